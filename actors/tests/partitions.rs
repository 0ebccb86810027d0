//! A stream split into 4 partitions, against a private Redis: events spread over
//! the 4 streams by their ordering key, each key in exactly one partition, one group
//! handles them all in per-key order; a dead letter stays in its partition's dlq and
//! reprocessing brings it back to that partition for that group only; retention
//! trims every partition; an ordering key that disagrees with the catalog's is
//! refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde::{Deserialize, Serialize};
use strategist_actors::partition::partition_of;
use strategist_actors::{
    Catalog, DeadLetterFilter, DeadLetters, Engine, EngineConfig, EngineError, Envelope, Event,
    EventType, HandlerError, Health, Hooks, Keys, Pool, PoolOptions, Publisher, RetentionKeeper,
    RetentionStats, RetryPolicy, StreamRetention, TypeOptions,
};

const PART: &str = "part.events";
const KEYED: &str = "part.keyed";
const N: u32 = 4;

/// An event ordered by `key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Keyed {
    key: String,
    seq: u64,
}

impl EventType for Keyed {
    const TYPE: &'static str = KEYED;
    const STREAM: &'static str = PART;
    const ORDERING_KEY: Option<&'static str> = Some("key");
}

fn catalog() -> Arc<Catalog> {
    let mut c = Catalog::new();
    c.register::<Keyed>();
    Arc::new(c)
}

fn keys() -> Keys {
    Keys::new("t:").with_partitions(PART, N).unwrap()
}

/// Four key values that hash to the four different partitions.
fn four_keys() -> Vec<String> {
    let mut by_part: BTreeMap<u32, String> = BTreeMap::new();
    for i in 0.. {
        let k = format!("k{i}");
        by_part.entry(partition_of(k.as_bytes(), N)).or_insert(k);
        if by_part.len() == N as usize {
            break;
        }
    }
    by_part.into_values().collect()
}

fn options() -> PoolOptions {
    let mut o = PoolOptions {
        // 2 per partition's router.
        workers: 8,
        concurrency: 4,
        block_ms: 100,
        claim_idle_ms: 2000,
        claim_interval_ms: 20,
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay_ms: 10,
            jitter: false,
            ..RetryPolicy::default()
        },
        ..PoolOptions::default()
    };
    o.types.insert(
        KEYED.into(),
        TypeOptions {
            ordering_key: Some("key".into()),
            ..TypeOptions::default()
        },
    );
    o
}

async fn start(r: &LocalRedis, pools: Vec<Pool>) -> Result<Engine, EngineError> {
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let mut cfg = EngineConfig::for_this_process();
    cfg.arbiters = 2;
    cfg.keys = keys();
    Engine::start(
        client,
        shared,
        catalog(),
        cfg,
        pools,
        Health::default(),
        Hooks::default(),
    )
    .await
}

async fn publisher(r: &LocalRedis) -> Publisher {
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client).await.unwrap();
    Publisher::new(shared, keys(), catalog()).with_dedupe_window_ms(60_000)
}

fn xlen(c: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query(c).unwrap()
}

fn envelope(key: &str, seq: u64) -> Envelope {
    Envelope::new(
        KEYED,
        1,
        serde_json::to_value(Keyed {
            key: key.into(),
            seq,
        })
        .unwrap(),
    )
}

#[actix_rt::test]
async fn one_group_handles_every_partition_in_per_key_order() {
    let r = redis();
    let mut c = conn(&r);
    let keyset = four_keys();
    let publisher = publisher(&r).await;
    // Interleaved: k0 1, k1 1, ..., k0 2, ... in batches, as a busy producer sends.
    let per_key = 60u64;
    for seq in 1..=per_key {
        let batch: Vec<(&str, Envelope)> =
            keyset.iter().map(|k| (PART, envelope(k, seq))).collect();
        let published = publisher.publish_batch(&batch).await.unwrap();
        for (p, k) in published.iter().zip(&keyset) {
            assert_eq!(p.stream, PART, "the logical stream is reported");
            assert_eq!(p.partition, Some(partition_of(k.as_bytes(), N)));
        }
    }
    // The logical stream has no key of its own; each partition holds one key's events.
    assert_eq!(xlen(&mut c, "t:part.events"), 0);
    let mut partitions_of_key: HashMap<String, BTreeSet<u32>> = HashMap::new();
    for n in 0..N {
        let key = format!("t:part.events:{n}");
        assert_eq!(xlen(&mut c, &key), per_key, "partition {n} holds one key");
        for e in entries(&mut c, &key) {
            let data: Keyed = serde_json::from_str(&e["data"]).unwrap();
            partitions_of_key.entry(data.key).or_default().insert(n);
        }
    }
    assert_eq!(partitions_of_key.len(), 4);
    assert!(
        partitions_of_key.values().all(|p| p.len() == 1),
        "{partitions_of_key:?}"
    );

    let seen: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let s = seen.clone();
    let mut pool = Pool::new("ordered", options());
    pool.on(move |ev: Event<Keyed>| {
        let s = s.clone();
        async move {
            // Uneven work: without per-key order, later events would overtake.
            tokio::time::sleep(Duration::from_millis(ev.data.seq % 3)).await;
            s.lock()
                .unwrap()
                .entry(ev.data.key.clone())
                .or_default()
                .push(ev.data.seq);
            assert_eq!(ev.stream, PART, "handlers see the logical stream");
            Ok(())
        }
    });
    let engine = start(&r, vec![pool]).await.unwrap();
    assert_eq!(
        engine.routes().len(),
        N as usize,
        "one router per partition"
    );
    let workers = |engine: &Engine| -> Vec<u64> {
        engine
            .routes()
            .iter()
            .map(|r| r.stats.snapshot().workers)
            .collect()
    };
    eventually_async(
        Duration::from_secs(5),
        "the pool's 8 workers divided",
        || workers(&engine) == vec![2; 4],
    )
    .await;
    eventually_async(Duration::from_secs(20), "all handled and acked", || {
        seen.lock().unwrap().values().map(Vec::len).sum::<usize>() == (4 * per_key) as usize
            && (0..N).all(|n| {
                let g = group(&mut c, &format!("t:part.events:{n}"), "ordered");
                g.pending == 0 && g.lag == 0
            })
    })
    .await;
    for (k, seqs) in seen.lock().unwrap().iter() {
        let want: Vec<u64> = (1..=per_key).collect();
        assert_eq!(seqs, &want, "key {k} out of order");
    }
    // The figures come back as one (stream, group), summed over the partitions.
    let snap = engine.metrics().snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(
        (snap[0].partitions, snap[0].stats.handled),
        (N, 4 * per_key)
    );
    // A resize means the pool's count too, not each partition's.
    for (ask, each) in [(12, 3), (3, 1), (1, 1), (8, 2)] {
        assert_eq!(
            engine.resize("ordered", ask),
            N as usize,
            "every router told"
        );
        eventually_async(Duration::from_secs(5), "the routers resized", || {
            workers(&engine) == vec![each; 4]
        })
        .await;
    }
    engine.stop();
}

#[actix_rt::test]
async fn a_dead_letter_stays_in_its_partition_and_goes_back_to_its_group_only() {
    let r = redis();
    let mut c = conn(&r);
    let (a_calls, b_calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut failing = Pool::new("a", options());
    let calls = a_calls.clone();
    failing.on(move |_ev: Event<Keyed>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(HandlerError::permanent("first call fails"))
            } else {
                Ok(())
            }
        }
    });
    let mut fine = Pool::new("b", options());
    let calls = b_calls.clone();
    fine.on(move |_ev: Event<Keyed>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let engine = start(&r, vec![failing, fine]).await.unwrap();
    let key = four_keys()[2].clone();
    let p = partition_of(key.as_bytes(), N);
    let published = publisher(&r)
        .await
        .publish(PART, &envelope(&key, 1))
        .await
        .unwrap();
    assert_eq!(published.partition, Some(p));
    let dlq = format!("{{t:part.events:{p}}}.dlq");
    eventually_async(Duration::from_secs(10), "dead-lettered by a", || {
        xlen(&mut c, &dlq) == 1
    })
    .await;
    for n in (0..N).filter(|n| *n != p) {
        assert_eq!(xlen(&mut c, &format!("{{t:part.events:{n}}}.dlq")), 0);
    }
    assert_eq!(
        xlen(&mut c, "{t:part.events}.dlq"),
        0,
        "no dlq for the logical stream"
    );

    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client).await.unwrap();
    let dl = DeadLetters::new(shared, keys(), vec![PART.into()]);
    assert_eq!(
        dl.streams().len(),
        N as usize,
        "every partition's dead letters"
    );
    let filter = DeadLetterFilter {
        stream: Some(PART.into()),
        ..DeadLetterFilter::default()
    };
    let found = dl.list(&filter, 10).await.unwrap();
    assert_eq!(found.len(), 1);
    let d = &found[0];
    assert_eq!(
        (d.stream.as_str(), d.partition, d.group.as_str()),
        (PART, Some(p), "a")
    );
    assert!(d.id.starts_with(&format!("part.events:{p}:")), "{}", d.id);
    assert_eq!(dl.get(&d.id).await.unwrap().id, d.id);

    dl.reprocess(&d.id, "test").await.unwrap();
    eventually_async(Duration::from_secs(10), "a handled it again", || {
        a_calls.load(Ordering::SeqCst) == 2
    })
    .await;
    let redeliver = format!("{{t:part.events:{p}}}.redeliver:a");
    assert_eq!(
        xlen(&mut c, &redeliver),
        1,
        "sent back through its partition"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b_calls.load(Ordering::SeqCst), 1, "b never sees it again");
    assert_eq!(xlen(&mut c, &dlq), 0);
    engine.stop();
}

#[actix_rt::test]
async fn retention_trims_every_partition_to_its_share() {
    use actix::Actor;
    let r = redis();
    let mut c = conn(&r);
    let publisher = publisher(&r).await;
    let keyset = four_keys();
    for seq in 1..=50 {
        let batch: Vec<(&str, Envelope)> =
            keyset.iter().map(|k| (PART, envelope(k, seq))).collect();
        publisher.publish_batch(&batch).await.unwrap();
    }
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client).await.unwrap();
    let _keeper = RetentionKeeper::new(
        shared,
        keys(),
        vec![StreamRetention {
            stream: PART.into(),
            maxlen: 40,
            max_age_ms: 0,
            hard_cap: 0,
        }],
        Duration::from_millis(100),
        Duration::from_secs(3600),
        Hooks::default(),
        Arc::new(RetentionStats::default()),
    )
    .start();
    // No group: nothing holds trimming back; 40 over 4 partitions is 10 each.
    eventually_async(
        Duration::from_secs(10),
        "every partition trimmed to 10",
        || (0..N).all(|n| xlen(&mut c, &format!("t:part.events:{n}")) == 10),
    )
    .await;
}

#[actix_rt::test]
async fn an_ordering_key_the_catalog_does_not_partition_by_is_refused() {
    let r = redis();
    let mut o = options();
    o.types.get_mut(KEYED).unwrap().ordering_key = Some("seq".into());
    let mut pool = Pool::new("mismatch", o);
    pool.on(|_ev: Event<Keyed>| async { Ok(()) });
    let err = start(&r, vec![pool]).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("`seq`") && msg.contains("`key`"), "{msg}");
}
