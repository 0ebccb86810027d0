//! Resizing a pool while it works: growing runs more handlers at once at once;
//! shrinking lets the retired workers finish and ack what they hold, hands them
//! nothing new, and loses or repeats no entry. Real Redis, the real engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use strategist_actors::{Event, Pool, PoolOptions};

/// Handlers that take `ms` each, counting how many run at once.
struct Probe {
    now: AtomicUsize,
    peak: AtomicUsize,
    seen: Mutex<Vec<u64>>,
}

fn pool(probe: Arc<Probe>, ms: u64) -> Pool {
    let mut p = Pool::new(
        "elastic",
        PoolOptions {
            workers: 1,
            prefetch: 0,
            block_ms: 50,
            ..PoolOptions::default()
        },
    );
    p.on(move |ev: Event<TestPing>| {
        let probe = probe.clone();
        async move {
            let n = probe.now.fetch_add(1, Ordering::SeqCst) + 1;
            probe.peak.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            probe.now.fetch_sub(1, Ordering::SeqCst);
            probe.seen.lock().unwrap().push(ev.data.seq);
            Ok(())
        }
    });
    p
}

#[actix_rt::test]
async fn growing_runs_more_at_once_and_shrinking_drains_without_loss() {
    let r = redis();
    let probe = Arc::new(Probe {
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let engine = start(&r, vec![pool(probe.clone(), 300)]).await;
    let mut c = conn(&r);
    for i in 0..12 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        probe.peak.load(Ordering::SeqCst),
        1,
        "one worker: one at a time"
    );

    assert_eq!(engine.resize("elastic", 4), 1, "one router of the group");
    assert_eq!(engine.resize("nobody", 4), 0);
    eventually_async(Duration::from_secs(5), "four handlers at once", || {
        probe.peak.load(Ordering::SeqCst) == 4
    })
    .await;
    assert_eq!(engine.metrics().snapshot()[0].stats.workers, 4);

    // Shrink while four run: they finish and are acked; then one at a time.
    probe.peak.store(0, Ordering::SeqCst);
    engine.resize("elastic", 1);
    eventually_async(
        Duration::from_secs(5),
        "the retired workers finished",
        || probe.now.load(Ordering::SeqCst) <= 1,
    )
    .await;
    probe.peak.store(0, Ordering::SeqCst);
    for i in 12..16 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    eventually_async(
        Duration::from_secs(20),
        "every entry handled and acked",
        || {
            let g = group(&mut c, STREAM, "elastic");
            probe.seen.lock().unwrap().len() == 16 && g.pending == 0 && g.lag == 0
        },
    )
    .await;
    assert_eq!(probe.peak.load(Ordering::SeqCst), 1, "one worker again");
    let seen: HashSet<u64> = probe.seen.lock().unwrap().iter().copied().collect();
    assert_eq!(seen.len(), 16, "each entry once");
    let stats = engine.metrics().snapshot()[0].stats;
    assert_eq!((stats.workers, stats.handled, stats.failed), (1, 16, 0));
    engine.stop();
}

/// `XINFO CONSUMERS` of the group: (name, pending).
fn consumers(c: &mut redis::Connection, stream: &str, group: &str) -> Vec<(String, u64)> {
    let rows: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(group)
        .query(c)
        .unwrap();
    rows.iter()
        .map(|r| {
            let name = match &r["name"] {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                v => panic!("name {v:?}"),
            };
            let pending = match &r["pending"] {
                redis::Value::Int(n) => *n as u64,
                v => panic!("pending {v:?}"),
            };
            (name, pending)
        })
        .collect()
}

#[actix_rt::test]
async fn each_worker_owns_what_it_runs_under_its_own_consumer_name() {
    let r = redis();
    let probe = Arc::new(Probe {
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let mut p = pool(probe.clone(), 400);
    p.options.workers = 3;
    let engine = start(&r, vec![p]).await;
    let mut c = conn(&r);
    for i in 0..9 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    eventually_async(Duration::from_secs(5), "three handlers at once", || {
        probe.now.load(Ordering::SeqCst) == 3
    })
    .await;
    let prefix = format!(
        "{}-elastic",
        strategist_actors::EngineConfig::for_this_process().consumer_prefix
    );
    assert_eq!(engine.metrics().snapshot()[0].consumer_prefix, prefix);
    let held = consumers(&mut c, STREAM, "elastic");
    let mut names: Vec<&str> = held
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, _)| s.as_str())
        .collect();
    names.sort();
    let want: Vec<String> = (0..3).map(|n| format!("{prefix}-{n}")).collect();
    assert_eq!(
        names, want,
        "each of the three busy workers holds entries as its own consumer: {held:?}"
    );
    assert!(
        held.iter().all(|(_, n)| *n <= 1),
        "one worker, one entry at a time, no prefetch: {held:?}"
    );
    eventually_async(Duration::from_secs(20), "all nine handled", || {
        probe.seen.lock().unwrap().len() == 9
    })
    .await;
    eventually_async(Duration::from_secs(5), "nothing pending", || {
        group(&mut c, STREAM, "elastic").pending == 0
    })
    .await;
    let seen: HashSet<u64> = probe.seen.lock().unwrap().iter().copied().collect();
    assert_eq!(seen.len(), 9, "each entry once");
    engine.stop();
}
