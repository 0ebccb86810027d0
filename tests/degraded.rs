//! `system.performance.degraded`: a handler made slow crosses the latency threshold
//! once and recovers once when it is fast again; a queue figure seen by two
//! processes is reported once, not once per process. Real Redis, the real engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use strategist::config::ThresholdSettings;
use strategist::degraded::Watch;
use strategist::events::system::SystemBenchPing;
use strategist_actors::{
    Engine, EngineMetrics, Event, EventType, Keys, Pool, PoolOptions, Publisher,
};

fn thresholds() -> ThresholdSettings {
    ThresholdSettings {
        interval_ms: 100,
        window_ms: 1000,
        min_calls: 5,
        recovery_ratio: 0.8,
        latency_p95_ms: 100.0,
        error_rate: 0.0,
        queue_depth: 0,
        oldest_pending_age_ms: 0,
        dead_letters_per_minute: 0.0,
    }
}

async fn shared(r: &LocalRedis) -> (redis::Client, redis::aio::ConnectionManager) {
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    (client, shared)
}

fn ping(seq: u64) -> SystemBenchPing {
    SystemBenchPing {
        seq,
        sent_at_us: 0,
        pad: String::new(),
    }
}

async fn publish_pings(p: &Publisher, from: u64, n: u64) {
    for i in from..from + n {
        p.publish_typed(&ping(i), |e| e).await.unwrap();
    }
}

fn degraded_events(c: &mut redis::Connection, keys: &Keys) -> Vec<serde_json::Value> {
    entries(c, &keys.stream("system.events"))
        .into_iter()
        .filter(|e| e.get("type").map(String::as_str) == Some("system.performance.degraded"))
        .map(|e| serde_json::from_str(&e["data"]).unwrap())
        .collect()
}

#[actix_rt::test]
async fn a_slow_handler_crosses_once_and_recovers_once() {
    let r = redis();
    let (client, shared) = shared(&r).await;
    let keys = Keys::default();
    let catalog = Arc::new(strategist::events::catalog());
    let delay_ms = Arc::new(AtomicU64::new(250));
    let handled = Arc::new(AtomicU64::new(0));
    let mut pool = Pool::new(
        "slow",
        PoolOptions {
            workers: 4,
            block_ms: 50,
            ..PoolOptions::default()
        },
    );
    let (d, h) = (delay_ms.clone(), handled.clone());
    pool.on(move |_: Event<SystemBenchPing>| {
        let (d, h) = (d.clone(), h.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
            h.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let engine = Engine::builder(client, shared.clone(), catalog.clone())
        .pool(pool)
        .start()
        .await
        .unwrap();
    let publisher = Publisher::new(shared.clone(), keys.clone(), catalog);
    let mut watch = Watch::new(
        thresholds(),
        engine.metrics(),
        shared.clone(),
        keys.clone(),
        publisher.clone(),
        "test@host-1".into(),
    );
    let latency_key = format!(
        "latency_p95_ms.system.events.slow.{}",
        SystemBenchPing::TYPE
    );

    publish_pings(&publisher, 0, 12).await;
    eventually_async(Duration::from_secs(20), "12 slow pings handled", || {
        handled.load(Ordering::SeqCst) == 12
    })
    .await;
    let changes = watch.tick().await;
    let crossing: Vec<_> = changes
        .iter()
        .filter(|c| c.reading.key == latency_key)
        .collect();
    assert_eq!(crossing.len(), 1, "{changes:?}");
    assert!(!crossing[0].recovered);
    assert!(crossing[0].reading.value > 100.0, "{:?}", crossing[0]);
    for c in changes {
        watch.publish(c).await;
    }
    // Still slow: no second event for the same crossing.
    assert!(watch.tick().await.is_empty());

    // Fast again; once the slow calls are out of the window, it recovers.
    delay_ms.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        watch.tick().await.is_empty(),
        "too few calls in the window say nothing"
    );
    publish_pings(&publisher, 100, 12).await;
    eventually_async(Duration::from_secs(20), "12 fast pings handled", || {
        handled.load(Ordering::SeqCst) == 24
    })
    .await;
    let changes = watch.tick().await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].recovered);
    assert_eq!(changes[0].reading.key, latency_key);
    assert!(changes[0].reading.value <= 80.0, "{:?}", changes[0]);
    for c in changes {
        watch.publish(c).await;
    }
    assert!(watch.tick().await.is_empty());

    let mut c = conn(&r);
    let events = degraded_events(&mut c, &keys);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["metric_name"], latency_key.as_str());
    assert_eq!(events[0]["threshold_value"], 100.0);
    assert!(events[0].get("recovered").is_none(), "{}", events[0]);
    assert!(!events[0]["suggested_actions"].as_array().unwrap().is_empty());
    assert_eq!(events[0]["affected_services"][0], "slow");
    assert_eq!(events[1]["recovered"], true);
    engine.stop();
}

#[actix_rt::test]
async fn a_queue_crossing_seen_by_two_processes_is_reported_once() {
    let r = redis();
    let (_client, shared) = shared(&r).await;
    let keys = Keys::default();
    let catalog = Arc::new(strategist::events::catalog());
    let publisher = Publisher::new(shared.clone(), keys.clone(), catalog);
    let settings = ThresholdSettings {
        latency_p95_ms: 0.0,
        queue_depth: 5,
        ..thresholds()
    };
    let watch = |name: &str| {
        Watch::new(
            settings.clone(),
            EngineMetrics::empty(),
            shared.clone(),
            keys.clone(),
            publisher.clone(),
            name.into(),
        )
    };
    let (mut a, mut b) = (watch("a"), watch("b"));
    let mut c = conn(&r);
    let stream = keys.stream("system.events");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("idle")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut c)
        .unwrap();
    publish_pings(&publisher, 0, 10).await;

    let (ca, cb) = (a.tick().await, b.tick().await);
    let key = "queue_depth.system.events.idle";
    let all: Vec<_> = ca
        .iter()
        .chain(cb.iter())
        .filter(|c| c.reading.key == key)
        .collect();
    assert_eq!(all.len(), 1, "one report for two processes: {ca:?} {cb:?}");
    assert!(!all[0].recovered);
    assert_eq!(all[0].reading.value, 10.0);
    assert!(a.tick().await.is_empty() && b.tick().await.is_empty());

    // The group catches up: one recovery.
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(&stream)
        .arg("idle")
        .arg("$")
        .query(&mut c)
        .unwrap();
    let (ca, cb) = (b.tick().await, a.tick().await);
    let all: Vec<_> = ca
        .iter()
        .chain(cb.iter())
        .filter(|c| c.reading.key == key)
        .collect();
    assert_eq!(all.len(), 1, "{ca:?} {cb:?}");
    assert!(all[0].recovered);
}
