//! The engine on a real local Redis Cluster (three masters, three replicas): events
//! on streams that live on different masters are handled exactly once; retries,
//! dead letters and their reprocessing, and claims of a dead consumer's entries
//! work there as on one server; a stream split into partitions spreads over slots
//! and masters and keeps per-key order. The cluster's own faults are in the
//! application's `tests/cluster_faults.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::LocalCluster;
use common::eventually_async;
use serde::{Deserialize, Serialize};
use strategist_actors::{
    BackoffStrategy, Catalog, ConnOptions, DeadLetterFilter, DeadLetters, Engine, EngineConfig,
    Envelope, Event, EventType, HandlerError, Health, Hooks, Keys, Pool, PoolOptions, Publisher,
    RedisClient, RetryPolicy,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Alpha {
    seq: u64,
}
impl EventType for Alpha {
    const TYPE: &'static str = "alpha.happened";
    const STREAM: &'static str = "alpha.events";
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Beta {
    seq: u64,
}
impl EventType for Beta {
    const TYPE: &'static str = "beta.happened";
    const STREAM: &'static str = "beta.events";
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Gamma {
    seq: u64,
}
impl EventType for Gamma {
    const TYPE: &'static str = "gamma.happened";
    const STREAM: &'static str = "gamma.events";
}

const STREAMS: [&str; 3] = ["alpha.events", "beta.events", "gamma.events"];

/// An event ordered (and partitioned) by `key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Delta {
    key: String,
    seq: u64,
}
impl EventType for Delta {
    const TYPE: &'static str = "delta.happened";
    const STREAM: &'static str = "delta.events";
    const ORDERING_KEY: Option<&'static str> = Some("key");
}

fn catalog() -> Arc<Catalog> {
    let mut c = Catalog::new();
    c.register::<Alpha>();
    c.register::<Beta>();
    c.register::<Gamma>();
    c.register::<Delta>();
    Arc::new(c)
}

fn options() -> PoolOptions {
    PoolOptions {
        workers: 2,
        block_ms: 200,
        claim_idle_ms: 1000,
        claim_interval_ms: 50,
        retry: RetryPolicy {
            max_attempts: 3,
            backoff_strategy: BackoffStrategy::Fixed,
            base_delay_ms: 100,
            max_delay_ms: 1000,
            jitter: false,
        },
        ..PoolOptions::default()
    }
}

/// Successful handlings and attempts per (stream, seq).
#[derive(Default)]
struct Seen {
    ok: HashMap<(&'static str, u64), u32>,
    attempts: HashMap<(&'static str, u64), u32>,
}

type Shared = Arc<Mutex<Seen>>;

/// seq 3 fails once (retry path); seq 7 fails for good while `refuse` holds.
fn outcome(
    seen: &Shared,
    refuse: &AtomicBool,
    stream: &'static str,
    seq: u64,
) -> Result<(), HandlerError> {
    let mut s = seen.lock().unwrap();
    let n = {
        let a = s.attempts.entry((stream, seq)).or_default();
        *a += 1;
        *a
    };
    if seq == 3 && n == 1 {
        return Err(HandlerError::retryable("first attempt fails"));
    }
    if seq == 7 && refuse.load(Ordering::SeqCst) {
        return Err(HandlerError::permanent("refused"));
    }
    *s.ok.entry((stream, seq)).or_default() += 1;
    Ok(())
}

fn pool(seen: &Shared, refuse: &Arc<AtomicBool>) -> Pool {
    let mut p = Pool::new("cluster-worker", options());
    let (s, r) = (seen.clone(), refuse.clone());
    p.on(move |ev: Event<Alpha>| {
        let res = outcome(&s, &r, Alpha::STREAM, ev.data.seq);
        async move { res }
    });
    let (s, r) = (seen.clone(), refuse.clone());
    p.on(move |ev: Event<Beta>| {
        let res = outcome(&s, &r, Beta::STREAM, ev.data.seq);
        async move { res }
    });
    let (s, r) = (seen.clone(), refuse.clone());
    p.on(move |ev: Event<Gamma>| {
        let res = outcome(&s, &r, Gamma::STREAM, ev.data.seq);
        async move { res }
    });
    p
}

fn envelope(stream: &str, seq: u64) -> Envelope {
    let t = match stream {
        "alpha.events" => Alpha::TYPE,
        "beta.events" => Beta::TYPE,
        _ => Gamma::TYPE,
    };
    Envelope::new(t, 1, serde_json::json!({ "seq": seq }))
}

#[actix_rt::test]
async fn the_engine_handles_every_event_once_on_a_cluster() {
    let cluster = LocalCluster::start();
    // The three streams must not all share a master, or this proves little.
    let masters: BTreeSet<u16> = STREAMS.iter().map(|s| cluster.master_of(s)).collect();
    assert!(masters.len() >= 2, "streams on masters {masters:?}");

    let client = RedisClient::open(&cluster.url()).unwrap();
    assert!(client.is_cluster());
    let shared = client.shared(ConnOptions::default(), None).await.unwrap();
    let keys = Keys::default();

    // A consumer that read entries and died: the engine must claim them.
    let mut c = shared.clone();
    for s in STREAMS {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(s)
            .arg("cluster-worker")
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut c)
            .await
            .unwrap();
    }
    let publisher =
        Publisher::new(shared.clone(), keys.clone(), catalog()).with_dedupe_window_ms(60_000);
    // One batch over all three streams: one pipeline per slot.
    let early: Vec<(&str, Envelope)> = STREAMS
        .iter()
        .flat_map(|s| (100..105).map(move |seq| (*s, envelope(s, seq))))
        .collect();
    let published = publisher.publish_batch(&early).await.unwrap();
    assert_eq!(published.len(), 15);
    // Publishing the same events again adds nothing (de-duplicated by id).
    let again = publisher.publish_batch(&early).await.unwrap();
    assert!(again.iter().all(|p| p.duplicate), "second publish deduped");
    for s in STREAMS {
        let v: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("cluster-worker")
            .arg("ghost")
            .arg("COUNT")
            .arg(5)
            .arg("STREAMS")
            .arg(s)
            .arg(">")
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(strategist_actors::redis_io::parse_stream_reply(v).len(), 5);
    }

    let seen: Shared = Arc::default();
    let refuse = Arc::new(AtomicBool::new(true));
    let mut cfg = EngineConfig::for_this_process();
    cfg.arbiters = 2;
    let health = Health::default();
    let engine = Engine::start(
        client.clone(),
        shared.clone(),
        catalog(),
        cfg,
        vec![pool(&seen, &refuse)],
        health.clone(),
        Hooks::default(),
    )
    .await
    .unwrap();

    let mut batch = Vec::new();
    for seq in 0..30 {
        for s in STREAMS {
            batch.push((s, envelope(s, seq)));
        }
    }
    publisher.publish_batch(&batch).await.unwrap();

    let expected: Vec<(&'static str, u64)> = STREAMS
        .iter()
        .flat_map(|s| (0..30).chain(100..105).map(move |q| (*s, q)))
        .filter(|(_, q)| *q != 7)
        .collect();
    eventually_async(
        Duration::from_secs(20),
        "every event but seq 7 handled, the ghost's claimed",
        || {
            let s = seen.lock().unwrap();
            expected.iter().all(|k| s.ok.contains_key(k))
        },
    )
    .await;

    // seq 7 of each stream is a dead letter, in its stream's {stream}.dlq.
    let dl = DeadLetters::new(
        shared.clone(),
        keys.clone(),
        STREAMS.iter().map(|s| s.to_string()).collect(),
    );
    let mut letters = Vec::new();
    for _ in 0..200 {
        letters = dl.list(&DeadLetterFilter::default(), 100).await.unwrap();
        if letters.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters.len(), 3, "one dead letter per stream: {letters:?}");

    // Reprocessed, they run again (through each stream's redelivery stream).
    refuse.store(false, Ordering::SeqCst);
    for l in &letters {
        dl.reprocess(&l.id, "cluster test").await.unwrap();
    }
    eventually_async(
        Duration::from_secs(20),
        "reprocessed dead letters handled",
        || {
            let s = seen.lock().unwrap();
            STREAMS.iter().all(|st| s.ok.get(&(*st, 7)) == Some(&1))
        },
    )
    .await;

    // Exactly once: no event succeeded twice, and seq 3 was retried.
    {
        let s = seen.lock().unwrap();
        let twice: Vec<_> = s.ok.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "handled more than once: {twice:?}");
        assert_eq!(s.ok.len(), 105, "every event handled");
        for st in STREAMS {
            assert_eq!(s.attempts[&(st, 3)], 2, "seq 3 of {st} retried once");
        }
    }
    // Nothing pending anywhere, and the ghost lost everything it held.
    let mut c = shared.clone();
    for s in STREAMS {
        let mut pending = i64::MAX;
        for _ in 0..100 {
            let v: redis::Value = redis::cmd("XPENDING")
                .arg(s)
                .arg("cluster-worker")
                .query_async(&mut c)
                .await
                .unwrap();
            pending = match v {
                redis::Value::Array(items) => strategist_actors::redis_io::int(&items[0]).unwrap(),
                _ => -1,
            };
            if pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pending, 0, "{s} has nothing pending");
    }
    assert!(
        health.not_ready().is_empty(),
        "ready: {:?}",
        health.not_ready()
    );
    engine.stop();
}

#[actix_rt::test]
async fn a_cluster_with_no_node_answering_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = RedisClient::open(&format!("redis+cluster://127.0.0.1:{port}")).unwrap();
    let started = std::time::Instant::now();
    let opts = ConnOptions {
        connect_timeout: Duration::from_millis(500),
        ..ConnOptions::default()
    };
    assert!(client.shared(opts, None).await.is_err());
    assert!(client.dedicated(opts).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn a_partitioned_stream_spreads_over_masters_and_keeps_per_key_order() {
    const N: u32 = 4;
    let cluster = LocalCluster::start();
    let keys = Keys::new("c:").with_partitions(Delta::STREAM, N).unwrap();
    let parts = keys.partitions(Delta::STREAM);
    let slot = |k: &str| -> u16 {
        cluster
            .node_cmd(
                cluster.live_ports()[0],
                redis::cmd("CLUSTER").arg("KEYSLOT").arg(k),
            )
            .unwrap()
    };
    let slots: BTreeSet<u16> = parts.iter().map(|p| slot(&keys.stream(p))).collect();
    assert_eq!(slots.len(), N as usize, "each partition in its own slot");
    for p in &parts {
        // The companions share their partition's slot (the dead-letter script is atomic).
        assert_eq!(slot(&keys.dlq(p)), slot(&keys.stream(p)));
        assert_eq!(slot(&keys.retry(p, "g")), slot(&keys.stream(p)));
    }
    let masters: BTreeSet<u16> = parts
        .iter()
        .map(|p| cluster.master_of(&keys.stream(p)))
        .collect();
    assert!(masters.len() >= 2, "partitions on masters {masters:?}");

    let client = RedisClient::open(&cluster.url()).unwrap();
    let shared = client.shared(ConnOptions::default(), None).await.unwrap();
    let seen: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let refused = Arc::new(AtomicBool::new(false));
    let mut o = options();
    o.types.insert(
        Delta::TYPE.into(),
        strategist_actors::TypeOptions {
            ordering_key: Some("key".into()),
            ..Default::default()
        },
    );
    let mut p = Pool::new("delta-worker", o);
    let (s, r) = (seen.clone(), refused.clone());
    p.on(move |ev: Event<Delta>| {
        // seq 5 of key k0 fails for good once: a dead letter in its partition.
        let fail = ev.data.key == "k0" && ev.data.seq == 5 && !r.swap(true, Ordering::SeqCst);
        if !fail {
            s.lock()
                .unwrap()
                .entry(ev.data.key.clone())
                .or_default()
                .push(ev.data.seq);
        }
        async move {
            if fail {
                Err(HandlerError::permanent("refused once"))
            } else {
                Ok(())
            }
        }
    });
    let mut cfg = EngineConfig::for_this_process();
    cfg.arbiters = 2;
    cfg.keys = keys.clone();
    let engine = Engine::start(
        client.clone(),
        shared.clone(),
        catalog(),
        cfg,
        vec![p],
        Health::default(),
        Hooks::default(),
    )
    .await
    .unwrap();
    assert_eq!(engine.routes().len(), N as usize);

    let publisher =
        Publisher::new(shared.clone(), keys.clone(), catalog()).with_dedupe_window_ms(60_000);
    let names: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let mut batch = Vec::new();
    for seq in 1..=20u64 {
        for k in &names {
            let data = serde_json::json!({ "key": k, "seq": seq });
            batch.push((Delta::STREAM, Envelope::new(Delta::TYPE, 1, data)));
        }
    }
    // One batch over every partition: one pipeline per slot, each in order.
    let published = publisher.publish_batch(&batch).await.unwrap();
    let used: BTreeSet<u32> = published.iter().filter_map(|p| p.partition).collect();
    assert!(used.len() >= 2, "8 keys over {used:?}");

    let dl = DeadLetters::new(shared.clone(), keys.clone(), vec![Delta::STREAM.into()]);
    let mut letters = Vec::new();
    for _ in 0..200 {
        letters = dl.list(&DeadLetterFilter::default(), 10).await.unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters.len(), 1, "{letters:?}");
    let k0 = strategist_actors::partition::partition_of(b"k0", N);
    assert_eq!(letters[0].partition, Some(k0));
    dl.reprocess(&letters[0].id, "cluster test").await.unwrap();
    eventually_async(Duration::from_secs(20), "every event handled", || {
        seen.lock().unwrap().values().map(Vec::len).sum::<usize>() == 160
    })
    .await;
    let seen = seen.lock().unwrap();
    let want: Vec<u64> = (1..=20).collect();
    for k in names.iter().filter(|k| *k != "k0") {
        assert_eq!(seen[k], want, "{k} in order");
    }
    // k0's seq 5 came back through the redelivery stream after the others.
    assert_eq!(seen["k0"].len(), 20);
    engine.stop();
}
