//! The engine's delivery semantics in one process, against a private Redis, with the
//! test catalog of `common` and no application type: retries with backoff, panics,
//! dead letters with every field, per-group redelivery, handler timeouts, crash loops.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use strategist_actors::{
    BackoffStrategy, Engine, EngineConfig, Event, HandlerError, Health, Hooks, Pool, PoolOptions,
    RetryPolicy,
};

fn options(max_attempts: u32, strategy: BackoffStrategy, base_ms: u64) -> PoolOptions {
    PoolOptions {
        workers: 1,
        block_ms: 100,
        claim_idle_ms: 2000,
        claim_interval_ms: 20,
        retry: RetryPolicy {
            max_attempts,
            backoff_strategy: strategy,
            base_delay_ms: base_ms,
            max_delay_ms: 10_000,
            jitter: false,
        },
        ..PoolOptions::default()
    }
}

/// Records when each attempt of each event happened.
type Attempts = Arc<Mutex<HashMap<u64, Vec<Instant>>>>;

fn record(attempts: &Attempts, seq: u64) -> usize {
    let mut a = attempts.lock().unwrap();
    let v = a.entry(seq).or_default();
    v.push(Instant::now());
    v.len()
}

#[actix_rt::test]
async fn retries_follow_each_backoff_strategy_and_then_succeed() {
    for (strategy, want_ms) in [
        (BackoffStrategy::Fixed, [150u64, 150]),
        (BackoffStrategy::Linear, [150, 300]),
        (BackoffStrategy::Exponential, [150, 300]),
    ] {
        let r = redis();
        let attempts: Attempts = Arc::default();
        let seen = attempts.clone();
        let mut pool = Pool::new("retrier", options(3, strategy, 150));
        pool.on(move |ev: Event<TestPing>| {
            let n = record(&seen, ev.data.seq);
            async move {
                if n < 3 {
                    Err(HandlerError::retryable(format!("attempt {n} fails")))
                } else {
                    Ok(())
                }
            }
        });
        let engine = start(&r, vec![pool]).await;
        let mut c = conn(&r);
        xadd_event(&mut c, STREAM, PING, &ping(1));
        eventually_async(
            Duration::from_secs(10),
            "third attempt ran and was acked",
            || {
                group(&mut c, STREAM, "retrier").pending == 0
                    && attempts.lock().unwrap().get(&1).map(Vec::len) == Some(3)
            },
        )
        .await;
        let times = attempts.lock().unwrap()[&1].clone();
        for (i, want) in want_ms.iter().enumerate() {
            let got = times[i + 1].duration_since(times[i]).as_millis() as u64;
            // Never early; late by at most the claim interval plus scheduling noise.
            assert!(
                got >= *want && got < want + 400,
                "{strategy:?} delay {i}: {got} ms, want {want}"
            );
        }
        let stats = engine.routes()[0].stats.snapshot();
        assert_eq!(
            (stats.retried, stats.handled, stats.dead_lettered),
            (2, 1, 0),
            "{strategy:?}"
        );
        engine.stop();
    }
}

#[actix_rt::test]
async fn a_panicking_handler_is_restarted_and_its_entry_delivered_again() {
    let r = redis();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let mut pool = Pool::new("panicky", options(3, BackoffStrategy::Fixed, 50));
    pool.on(move |ev: Event<TestPing>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if ev.data.seq == 1 && n == 0 {
                panic!("boom on the first try");
            }
            Ok(())
        }
    });
    let engine = start(&r, vec![pool]).await;
    let mut c = conn(&r);
    xadd_event(&mut c, STREAM, PING, &ping(1));
    eventually_async(
        Duration::from_secs(10),
        "redelivered after the panic and acked",
        || group(&mut c, STREAM, "panicky").pending == 0 && calls.load(Ordering::SeqCst) == 2,
    )
    .await;
    // The one worker is alive again and takes new work.
    xadd_event(&mut c, STREAM, PING, &ping(2));
    eventually_async(
        Duration::from_secs(10),
        "the restarted worker handles new work",
        || calls.load(Ordering::SeqCst) == 3 && group(&mut c, STREAM, "panicky").pending == 0,
    )
    .await;
    let stats = engine.routes()[0].stats.snapshot();
    assert_eq!(
        (stats.handled, stats.failed, stats.dead_lettered),
        (2, 1, 0)
    );
    let snap = engine.metrics().snapshot();
    let t = &snap[0].types[0];
    assert_eq!((t.handled, t.failed, t.window.handled), (2, 1, 2));
    assert_eq!(snap[0].stats.in_flight, 0, "nothing runs any more");
    assert_eq!(
        (snap[0].stats.workers, snap[0].stats.restarts),
        (1, 1),
        "one worker, restarted once after the panic"
    );
    engine.stop();
}

#[actix_rt::test]
async fn exhausted_and_permanent_failures_are_dead_lettered_with_every_field() {
    let r = redis();
    let mut pool = Pool::new("doomed", options(2, BackoffStrategy::Fixed, 50));
    pool.on(|ev: Event<TestPing>| async move {
        if ev.data.seq == 1 {
            Err(HandlerError::retryable("service down"))
        } else {
            Err(HandlerError::permanent("bad input"))
        }
    });
    let engine = start(&r, vec![pool]).await;
    let mut c = conn(&r);
    let retried_id = xadd_event(&mut c, STREAM, PING, &ping(1));
    let permanent_id = xadd_event(&mut c, STREAM, PING, &ping(2));
    eventually_async(
        Duration::from_secs(10),
        "both dead-lettered and acked",
        || {
            entries(&mut c, "{test.events}.dlq").len() == 2
                && group(&mut c, STREAM, "doomed").pending == 0
        },
    )
    .await;
    let dlq = entries(&mut c, "{test.events}.dlq");
    let by_id = |id: &str| dlq.iter().find(|e| e["id"] == id).cloned().unwrap();
    let retried = by_id(&retried_id);
    assert_eq!(retried["dlq_reason"], "handler_failed");
    assert_eq!(retried["dlq_attempts"], "2");
    assert_eq!(retried["dlq_error"], "service down");
    assert_eq!(retried["dlq_group"], "doomed");
    assert_eq!(retried["type"], PING, "original fields kept");
    assert!(retried["dlq_original_id"].contains('-'));
    assert!(chrono::DateTime::parse_from_rfc3339(&retried["dlq_at"]).is_ok());
    let permanent = by_id(&permanent_id);
    assert_eq!(
        permanent["dlq_attempts"], "1",
        "no retry for a permanent error"
    );
    assert_eq!(permanent["dlq_error"], "bad input");
    let retry_key_len: i64 = redis::cmd("ZCARD")
        .arg("{test.events}.retry:doomed")
        .query(&mut c)
        .unwrap();
    assert_eq!(retry_key_len, 0, "no retry left scheduled");
    // Measured per type: three failed calls, two dead letters, no latency (that is
    // of successes only).
    let metrics = engine.metrics();
    eventually_async(Duration::from_secs(5), "both dead letters measured", || {
        metrics.snapshot()[0]
            .types
            .first()
            .is_some_and(|t| t.dead_lettered == 2)
    })
    .await;
    let snap = metrics.snapshot();
    let t = &snap[0].types[0];
    assert_eq!(t.event_type, PING);
    assert_eq!((t.handled, t.failed, t.dead_lettered), (0, 3, 2));
    assert_eq!((t.window.failed, t.window.dead_lettered), (3, 2));
    assert_eq!(t.window.error_rate(), 1.0);
    assert_eq!((t.processing.count, t.latency.count), (3, 0));
    engine.stop();
}

#[actix_rt::test]
async fn a_failure_is_retried_only_for_the_group_that_failed() {
    let r = redis();
    let fails = Arc::new(AtomicU32::new(0));
    let ok = Arc::new(AtomicU32::new(0));
    let (f, o) = (fails.clone(), ok.clone());
    let mut failing = Pool::new("failing", options(3, BackoffStrategy::Fixed, 50));
    failing.on(move |_: Event<TestPing>| {
        let n = f.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(HandlerError::retryable("once"))
            } else {
                Ok(())
            }
        }
    });
    let mut fine = Pool::new("fine", options(3, BackoffStrategy::Fixed, 50));
    fine.on(move |_: Event<TestPing>| {
        o.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let engine = start(&r, vec![failing, fine]).await;
    let mut c = conn(&r);
    xadd_event(&mut c, STREAM, PING, &ping(1));
    eventually_async(
        Duration::from_secs(10),
        "the failing group succeeded on retry",
        || fails.load(Ordering::SeqCst) == 2 && group(&mut c, STREAM, "failing").pending == 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ok.load(Ordering::SeqCst), 1, "the other group saw it once");
    engine.stop();
}

#[actix_rt::test]
async fn a_handler_past_its_timeout_is_cancelled_and_counted_as_a_failed_attempt() {
    let r = redis();
    let mut o = options(2, BackoffStrategy::Fixed, 50);
    o.handler_timeout_ms = 100;
    let mut pool = Pool::new("slow", o);
    pool.on(|_: Event<TestPing>| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    });
    let engine = start(&r, vec![pool]).await;
    let mut c = conn(&r);
    xadd_event(&mut c, STREAM, PING, &ping(1));
    eventually_async(Duration::from_secs(10), "dead-lettered as timeout", || {
        entries(&mut c, "{test.events}.dlq").len() == 1
    })
    .await;
    let dlq = entries(&mut c, "{test.events}.dlq");
    assert_eq!(dlq[0]["dlq_reason"], "timeout");
    assert_eq!(dlq[0]["dlq_attempts"], "2");
    engine.stop();
}

#[actix_rt::test]
async fn a_crash_loop_is_reported_and_paused_instead_of_spinning() {
    let r = redis();
    let mut o = options(10, BackoffStrategy::Fixed, 10);
    o.max_restarts = 2;
    o.restart_window_ms = 60_000;
    o.restart_cooldown_ms = 1500;
    let mut pool = Pool::new("crashy", o);
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    pool.on(move |_: Event<TestPing>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { panic!("always") }
    });
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let loops = Arc::new(Mutex::new(Vec::<String>::new()));
    let heard = loops.clone();
    let hooks =
        Hooks::default().on_crash_loop(move |part, _| heard.lock().unwrap().push(part.to_owned()));
    let health = Health::default();
    let engine = Engine::start(
        client,
        shared,
        Arc::new(catalog()),
        EngineConfig::for_this_process(),
        vec![pool],
        health.clone(),
        hooks,
    )
    .await
    .unwrap();
    let mut c = conn(&r);
    xadd_event(&mut c, STREAM, PING, &ping(1));
    eventually_async(Duration::from_secs(10), "crash loop reported", || {
        !loops.lock().unwrap().is_empty()
    })
    .await;
    let down = health.not_ready();
    assert!(
        down.iter()
            .any(|(part, why)| part.starts_with("worker:") && why.contains("crash loop")),
        "{down:?}"
    );
    // Paused: no further attempts during the cool-down.
    let at_pause = calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        at_pause,
        "the worker kept spinning"
    );
    assert_eq!(at_pause, 3, "max_restarts + 1 attempts before the pause");
    engine.stop();
}
