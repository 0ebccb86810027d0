//! Defects found by the engine review (issue 7), each proven by a test that failed
//! before its fix: leases that were taken back from a live owner, routers that died
//! silently on a panic in application code, dead letters for types a group ignores,
//! drains that never finished, and stalls behind one ordering key.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use strategist::events::{self, system::SystemBenchPing};
use strategist_actors::{
    BackoffStrategy, Engine, EngineConfig, Event, HandlerError, Health, Hooks, Keys, Pool,
    PoolOptions, RetryPolicy, TypeOptions,
};

fn hget(c: &mut redis::Connection, key: &str, field: &str) -> i64 {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query::<Option<i64>>(c)
        .unwrap()
        .unwrap_or(0)
}

/// `(entry id, owner)` of every pending entry of `group`.
fn pending(c: &mut redis::Connection, stream: &str, group: &str) -> Vec<(String, String)> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100)
        .query(c)
        .unwrap();
    rows.into_iter()
        .map(|(id, owner, _, _)| (id, owner))
        .collect()
}

#[test]
fn a_handler_that_blocks_its_thread_keeps_its_lease_and_runs_once() {
    let r = redis();
    let mut c = conn(&r);
    // Two processes whose handlers block their thread for 4 s; each looks for
    // stale entries (idle over 1 s) four times a second.
    let env = [
        ("PROBE_BLOCK_MS", "4000"),
        ("PROBE_CLAIM_IDLE_MS", "1000"),
        ("PROBE_WORKERS", "1"),
    ];
    let _a = probe(&r.url(), &env);
    let _b = probe(&r.url(), &env);
    let id = xadd_event(&mut c, "system.events", "system.bench.ping", &ping(0));
    eventually(Duration::from_secs(15), "handled and acked", || {
        hget(&mut c, "probe:handled", &id) >= 1
            && group(&mut c, "system.events", "probe").pending == 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        hget(&mut c, "probe:attempts", &id),
        1,
        "another process ran the entry while its owner was blocked"
    );
    assert_eq!(hget(&mut c, "probe:handled", &id), 1);
}

#[test]
fn a_lease_taken_by_another_consumer_is_not_taken_back_and_its_handler_is_cancelled() {
    let r = redis();
    let mut c = conn(&r);
    let _a = probe(
        &r.url(),
        &[
            ("PROBE_HANDLE_MS", "3000"),
            ("PROBE_CLAIM_IDLE_MS", "1000"),
            ("PROBE_WORKERS", "1"),
        ],
    );
    let id = xadd_event(&mut c, "system.events", "system.bench.ping", &ping(0));
    eventually(Duration::from_secs(10), "the process took it", || {
        hget(&mut c, "probe:attempts", &id) == 1
    });
    let (entry, owner) = pending(&mut c, "system.events", "probe").remove(0);
    assert_ne!(owner, "thief");
    // What a second process does after the owner lost Redis for longer than
    // claim_idle_ms: it claims the entry, runs it, and keeps its lease.
    for _ in 0..25 {
        let _: Vec<String> = redis::cmd("XCLAIM")
            .arg("system.events")
            .arg("probe")
            .arg("thief")
            .arg(0)
            .arg(&entry)
            .arg("JUSTID")
            .query(&mut c)
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        pending(&mut c, "system.events", "probe"),
        vec![(entry, "thief".to_string())],
        "the old owner took the entry back, or acked it under the new owner"
    );
    assert_eq!(
        hget(&mut c, "probe:handled", &id),
        0,
        "the old owner's handler went on after its lease was lost"
    );
}

#[test]
fn a_group_never_dead_letters_a_type_it_does_not_handle() {
    let r = redis();
    let mut c = conn(&r);
    let _a = probe(&r.url(), &[]);
    // A newer version of a type the probe group does not handle (no upcaster here).
    let id = ulid::Ulid::generate().to_string();
    let _: String = redis::cmd("XADD")
        .arg("system.events")
        .arg("*")
        .arg("id")
        .arg(&id)
        .arg("type")
        .arg("system.service.health")
        .arg("version")
        .arg("99")
        .arg("timestamp")
        .arg("2026-11-29T12:00:00.123Z")
        .arg("data")
        .arg("{\"whatever\":1}")
        .query(&mut c)
        .unwrap();
    let ping_id = xadd_event(&mut c, "system.events", "system.bench.ping", &ping(1));
    eventually(Duration::from_secs(10), "the ping was handled", || {
        hget(&mut c, "probe:handled", &ping_id) == 1
            && group(&mut c, "system.events", "probe").pending == 0
    });
    let dlq: u64 = redis::cmd("XLEN")
        .arg(Keys::default().dlq("system.events"))
        .query(&mut c)
        .unwrap();
    assert_eq!(dlq, 0, "an event the group ignores became a dead letter");
}

fn quick_options() -> PoolOptions {
    PoolOptions {
        workers: 1,
        block_ms: 100,
        claim_idle_ms: 2000,
        claim_interval_ms: 20,
        retry: RetryPolicy {
            max_attempts: 3,
            backoff_strategy: BackoffStrategy::Fixed,
            base_delay_ms: 60_000,
            max_delay_ms: 60_000,
            jitter: false,
        },
        ..PoolOptions::default()
    }
}

async fn start(r: &LocalRedis, pools: Vec<Pool>, hooks: Hooks, health: Health) -> Engine {
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let mut cfg = EngineConfig::for_this_process();
    cfg.arbiters = 2;
    Engine::start(
        client,
        shared,
        Arc::new(events::catalog()),
        cfg,
        pools,
        health,
        hooks,
    )
    .await
    .unwrap()
}

#[actix_rt::test]
async fn a_panic_in_the_span_hook_does_not_stop_the_router() {
    let r = redis();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut pool = Pool::new("hooked", quick_options());
    pool.on(move |ev: Event<SystemBenchPing>| {
        log.lock().unwrap().push(ev.data.seq);
        async { Ok(()) }
    });
    let hooks = Hooks::default().with_span(|d, _| {
        if d.envelope.data["seq"] == 1 {
            panic!("a bug in the application's span hook");
        }
        tracing::info_span!("handle")
    });
    let health = Health::default();
    let engine = start(&r, vec![pool], hooks, health.clone()).await;
    let mut c = conn(&r);
    for seq in 1..=3 {
        xadd_event(&mut c, "system.events", "system.bench.ping", &ping(seq));
    }
    eventually_async(Duration::from_secs(10), "all three handled", || {
        seen.lock().unwrap().len() == 3 && group(&mut c, "system.events", "hooked").pending == 0
    })
    .await;
    assert!(health.not_ready().is_empty(), "{:?}", health.not_ready());
    engine.stop();
}

#[actix_rt::test]
async fn a_router_that_died_is_reported_and_restarted() {
    let r = redis();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut pool = Pool::new("fragile", quick_options());
    pool.on(move |ev: Event<SystemBenchPing>| {
        log.lock().unwrap().push(ev.data.seq);
        async { Ok(()) }
    });
    let died = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let d = died.clone();
    let hooks = Hooks::default().on_router_died(move |part| d.lock().unwrap().push(part.into()));
    let health = Health::default();
    let engine = start(&r, vec![pool], hooks, health.clone()).await;
    let mut c = conn(&r);
    xadd_event(&mut c, "system.events", "system.bench.ping", &ping(1));
    eventually_async(Duration::from_secs(10), "first handled", || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    engine.inject_router_panic(0);
    eventually_async(Duration::from_secs(10), "the death reported", || {
        !died.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        died.lock().unwrap()[0],
        "router:system.events/fragile".to_string()
    );
    xadd_event(&mut c, "system.events", "system.bench.ping", &ping(2));
    eventually_async(Duration::from_secs(10), "handled after the restart", || {
        seen.lock().unwrap().len() == 2
    })
    .await;
    eventually_async(Duration::from_secs(5), "ready again", || {
        health.not_ready().is_empty()
    })
    .await;
    engine.stop();
}

/// An ordering key whose holder waits for a retry (a minute away) must neither
/// hold a drain nor take read room from other keys.
#[actix_rt::test]
async fn entries_behind_a_retrying_key_take_no_read_room_and_do_not_hold_a_drain() {
    let r = redis();
    let seen = Arc::new(std::sync::Mutex::new(HashMap::<u64, u32>::new()));
    let log = seen.clone();
    let mut types = std::collections::BTreeMap::new();
    types.insert(
        "system.bench.ping".to_string(),
        TypeOptions {
            ordering_key: Some("pad".into()),
            ..TypeOptions::default()
        },
    );
    let mut pool = Pool::new(
        "keyed",
        PoolOptions {
            prefetch: 3,
            types,
            ..quick_options()
        },
    );
    pool.on(move |ev: Event<SystemBenchPing>| {
        *log.lock().unwrap().entry(ev.data.seq).or_default() += 1;
        let busy_key = ev.data.seq < 100;
        async move {
            if busy_key {
                Err(HandlerError::retryable("the busy user's service is down"))
            } else {
                Ok(())
            }
        }
    });
    let engine = start(&r, vec![pool], Hooks::default(), Health::default()).await;
    let mut c = conn(&r);
    // One user's 20 events (one key), then 20 events of other users.
    for seq in 0..20 {
        let data = format!(r#"{{"seq":{seq},"sent_at_us":0,"pad":"busy"}}"#);
        xadd_event(&mut c, "system.events", "system.bench.ping", &data);
    }
    for seq in 100..120 {
        let data = format!(r#"{{"seq":{seq},"sent_at_us":0,"pad":"user-{seq}"}}"#);
        xadd_event(&mut c, "system.events", "system.bench.ping", &data);
    }
    eventually_async(
        Duration::from_secs(10),
        "the other users' events handled while the busy key waits",
        || (100..120).all(|s| seen.lock().unwrap().contains_key(&s)),
    )
    .await;
    assert_eq!(seen.lock().unwrap().get(&0), Some(&1));
    assert!(!seen.lock().unwrap().contains_key(&1), "order broken");
    let drained = engine.drain(Duration::from_secs(3)).await;
    assert!(drained, "the drain waited for a retry a minute away");
    engine.stop();
}

/// Retention keeps up with a fast stream: one tick removes everything past
/// `maxlen` that no group needs, not a fixed batch (issue 7: at most 10k per tick
/// let a stream at 100k events/s grow to its hard cap).
#[actix_rt::test]
async fn retention_removes_a_large_excess_in_one_tick() {
    use strategist_actors::{RetentionKeeper, RetentionStats, StreamRetention};
    let r = redis();
    let mut c = conn(&r);
    // 200,000 entries over about a second, as a busy stream has them.
    for batch in 0..40 {
        let mut pipe = redis::pipe();
        for i in 0..5000u64 {
            pipe.cmd("XADD")
                .arg("system.events")
                .arg("*")
                .arg("type")
                .arg("system.bench.ping")
                .arg("data")
                .arg(ping(batch * 5000 + i))
                .ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // A group that has read everything: nothing is needed any more.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("system.events")
        .arg("done")
        .arg("$")
        .query(&mut c)
        .unwrap();
    let client = redis::Client::open(r.url()).unwrap();
    let conn_m = redis::aio::ConnectionManager::new(client).await.unwrap();
    let stats = Arc::new(RetentionStats::default());
    use actix::Actor;
    let _keeper = RetentionKeeper::new(
        conn_m,
        Keys::default(),
        vec![StreamRetention {
            stream: "system.events".into(),
            maxlen: 10_000,
            max_age_ms: 0,
            hard_cap: 0,
        }],
        Duration::from_millis(1000),
        Duration::from_secs(3600),
        Hooks::default(),
        stats.clone(),
    )
    .start();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let len: u64 = redis::cmd("XLEN")
        .arg("system.events")
        .query(&mut c)
        .unwrap();
    assert!(
        (9_000..=12_000).contains(&len),
        "{len} entries left after 4 ticks, want about 10,000"
    );
}

/// A value that is not UTF-8 comes back from reprocessing byte for byte.
#[actix_rt::test]
async fn reprocessing_keeps_values_that_are_not_utf8() {
    use strategist_actors::DeadLetters;
    let r = redis();
    let mut c = conn(&r);
    let keys = Keys::default();
    let raw: &[u8] = &[0xff, 0xfe, b'x', 0x80];
    let dlq_id: String = redis::cmd("XADD")
        .arg(keys.dlq("system.events"))
        .arg("*")
        .arg("id")
        .arg("01JDEADLETTER0000000000000")
        .arg("type")
        .arg("system.bench.ping")
        .arg("data")
        .arg(raw)
        .arg("dlq_reason")
        .arg("invalid_event")
        .arg("dlq_error")
        .arg("not json")
        .arg("dlq_group")
        .arg("probe")
        .arg("dlq_attempts")
        .arg(1)
        .arg("dlq_original_id")
        .arg("1-0")
        .arg("dlq_at")
        .arg("2026-11-30T00:00:00.000Z")
        .query(&mut c)
        .unwrap();
    let client = redis::Client::open(r.url()).unwrap();
    let conn_m = redis::aio::ConnectionManager::new(client).await.unwrap();
    let dl = DeadLetters::new(conn_m, keys.clone(), vec!["system.events".into()]);
    dl.reprocess(&format!("system.events:{dlq_id}"), "test")
        .await
        .unwrap();
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(keys.redeliver("system.events", "probe"))
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let sent = strategist_actors::redis_io::parse_entries(v);
    let data = sent[0]
        .fields
        .iter()
        .find(|(k, _)| k == "data")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(data, raw, "the payload was changed on its way back");
    assert!(sent[0].fields.iter().all(|(k, _)| !k.starts_with("dlq_")));
}

/// A consumer that never read anything (`inactive` is -1 on Redis 7.2+) and owns
/// nothing is retired like any other silent consumer.
#[test]
fn a_consumer_that_never_read_is_retired() {
    let r = redis();
    let mut c = conn(&r);
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("system.events")
        .arg("probe")
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("system.events")
        .arg("probe")
        .arg("ghost")
        .query(&mut c)
        .unwrap();
    let _a = probe(&r.url(), &[("PROBE_GC_IDLE_MS", "300")]);
    let consumers = |c: &mut redis::Connection| -> Vec<String> {
        let v: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg("system.events")
            .arg("probe")
            .query(c)
            .unwrap();
        v.iter()
            .filter_map(|m| match m.get("name") {
                Some(redis::Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
                _ => None,
            })
            .collect()
    };
    eventually(
        Duration::from_secs(10),
        "the ghost consumer retired",
        || !consumers(&mut c).contains(&"ghost".to_string()),
    );
}

/// An entry waiting behind its ordering key whose lease another consumer takes
/// is let go: the key is not released early (the holder still runs), and when
/// its turn comes the key passes on instead of waiting for it.
#[actix_rt::test]
async fn a_waiting_entry_lost_to_another_consumer_does_not_block_its_key() {
    let r = redis();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut types = std::collections::BTreeMap::new();
    types.insert(
        "system.bench.ping".to_string(),
        TypeOptions {
            ordering_key: Some("pad".into()),
            ..TypeOptions::default()
        },
    );
    let mut pool = Pool::new(
        "keyed",
        PoolOptions {
            types,
            // Two workers: an entry released too early would run beside the first.
            workers: 2,
            claim_idle_ms: 2000,
            ..quick_options()
        },
    );
    pool.on(move |ev: Event<SystemBenchPing>| {
        log.lock().unwrap().push(ev.data.seq);
        let slow = ev.data.seq == 0;
        let log = log.clone();
        async move {
            if slow {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                // 100: the first entry is done with its key.
                log.lock().unwrap().push(100);
            }
            Ok(())
        }
    });
    let engine = start(&r, vec![pool], Hooks::default(), Health::default()).await;
    let mut c = conn(&r);
    for seq in 0..4 {
        let data = format!(r#"{{"seq":{seq},"sent_at_us":0,"pad":"one-user"}}"#);
        xadd_event(&mut c, "system.events", "system.bench.ping", &data);
    }
    eventually_async(
        Duration::from_secs(5),
        "the first entry runs, all four read",
        || seen.lock().unwrap().len() == 1 && pending(&mut c, "system.events", "keyed").len() == 4,
    )
    .await;
    // Another consumer takes the third entry (waiting behind the first and the
    // second) and keeps its lease.
    let third = pending(&mut c, "system.events", "keyed")[2].0.clone();
    for _ in 0..6 {
        let _: Vec<String> = redis::cmd("XCLAIM")
            .arg("system.events")
            .arg("keyed")
            .arg("thief")
            .arg(0)
            .arg(&third)
            .arg("JUSTID")
            .query(&mut c)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually_async(Duration::from_secs(8), "the fourth entry ran", || {
        seen.lock().unwrap().contains(&3)
    })
    .await;
    let order = seen.lock().unwrap().clone();
    assert_eq!(
        order,
        vec![0, 100, 1, 3],
        "in key order, one at a time, without the entry another consumer took"
    );
    assert_eq!(engine.routes()[0].stats.snapshot().leases_lost, 1);
    engine.stop();
}

/// A group's redelivery stream loses what the group has finished (it was never
/// trimmed: every reprocessed dead letter stayed there for ever).
#[actix_rt::test]
async fn retention_trims_what_a_group_finished_from_its_redelivery_stream() {
    use actix::Actor;
    use strategist_actors::{RetentionKeeper, RetentionStats, StreamRetention};
    let r = redis();
    let mut c = conn(&r);
    let keys = Keys::default();
    let back = keys.redeliver("system.events", "probe");
    for (key, from) in [("system.events", "$"), (back.as_str(), "0")] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg("probe")
            .arg(from)
            .arg("MKSTREAM")
            .query(&mut c)
            .unwrap();
    }
    for i in 0..5 {
        xadd_event(&mut c, &back, "system.bench.ping", &ping(i));
    }
    let read = read_group(&mut c, &back, "probe", 5);
    // Four finished, one still pending: that one must stay.
    let _: i64 = redis::cmd("XACK")
        .arg(&back)
        .arg("probe")
        .arg(&read[..4])
        .query(&mut c)
        .unwrap();
    let client = redis::Client::open(r.url()).unwrap();
    let conn_m = redis::aio::ConnectionManager::new(client).await.unwrap();
    let _keeper = RetentionKeeper::new(
        conn_m,
        keys.clone(),
        vec![StreamRetention {
            stream: "system.events".into(),
            maxlen: 0,
            max_age_ms: 0,
            hard_cap: 0,
        }],
        Duration::from_millis(50),
        Duration::from_secs(3600),
        Hooks::default(),
        Arc::new(RetentionStats::default()),
    )
    .start();
    eventually_async(
        Duration::from_secs(5),
        "the finished entries trimmed",
        || {
            let len: u64 = redis::cmd("XLEN").arg(&back).query(&mut c).unwrap();
            len == 1
        },
    )
    .await;
    let left = entries(&mut c, &back);
    assert_eq!(left.len(), 1);
    assert_eq!(group(&mut c, &back, "probe").pending, 1);
}

/// The auto-resolution sweep sees every dead letter, not only the oldest 10,000.
#[actix_rt::test]
async fn the_auto_resolution_sweep_reaches_dead_letters_past_the_first_ten_thousand() {
    use actix::Actor;
    use strategist_actors::{AutoResolver, DeadLetters, ResolutionAction, ResolutionRule};
    let r = redis();
    let mut c = conn(&r);
    let dlq = Keys::default().dlq("system.events");
    let letter = |pipe: &mut redis::Pipeline, group: &str| {
        pipe.cmd("XADD")
            .arg(&dlq)
            .arg("*")
            .arg("type")
            .arg("system.bench.ping")
            .arg("data")
            .arg("{}")
            .arg("dlq_reason")
            .arg("handler_failed")
            .arg("dlq_error")
            .arg("x")
            .arg("dlq_group")
            .arg(group)
            .arg("dlq_attempts")
            .arg(1)
            .arg("dlq_original_id")
            .arg("1-0")
            .arg("dlq_at")
            .arg("2026-11-30T00:00:00.000Z")
            .ignore();
    };
    let mut pipe = redis::pipe();
    for _ in 0..10_050 {
        letter(&mut pipe, "others");
    }
    letter(&mut pipe, "target");
    pipe.query::<()>(&mut c).unwrap();
    let rule = ResolutionRule {
        name: "drop-target".into(),
        match_reason: None,
        match_type: None,
        match_group: Some("target".into()),
        match_error: None,
        action: ResolutionAction::Drop,
        delay_ms: 0,
        max_reprocess: 0,
    };
    let client = redis::Client::open(r.url()).unwrap();
    let conn_m = redis::aio::ConnectionManager::new(client).await.unwrap();
    let dl = DeadLetters::new(conn_m, Keys::default(), vec!["system.events".into()]);
    let _resolver = AutoResolver::new(
        dl,
        vec![rule],
        Arc::new(events::catalog()),
        Duration::from_millis(200),
    )
    .start();
    eventually_async(
        Duration::from_secs(15),
        "the newest dead letter dropped",
        || {
            let len: u64 = redis::cmd("XLEN").arg(&dlq).query(&mut c).unwrap();
            len == 10_050
        },
    )
    .await;
    assert_eq!(
        entries(&mut c, &Keys::default().audit("system.events")).len(),
        1
    );
}
