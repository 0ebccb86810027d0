//! A consumer process built on the engine, for tests and as a minimal example of
//! using `strategist-actors` from another program: one pool that handles
//! `system.bench.ping` by recording, in Redis, which event it handled and in which
//! process. Tests run several of these, kill some, and read the record.
//!
//! Environment: `REDIS_URL`; `PROBE_GROUP` (default `probe`); `PROBE_WORKERS` (4);
//! `PROBE_HANDLE_MS` (0): how long each handler sleeps before recording;
//! `PROBE_BLOCK_MS` (0): how long each handler blocks its thread (no await: a
//! CPU-bound or blocking call) before recording;
//! `PROBE_CLAIM_IDLE_MS` (1000); `PROBE_GRACE_MS` (10000); `PROBE_GC_IDLE_MS`
//! (3600000): consumers silent this long with nothing pending are removed.
//! `PROBE_FAIL_TIMES` (0): the first N attempts of each event fail (retryable);
//! `PROBE_MAX_ATTEMPTS` (3) and `PROBE_BASE_DELAY_MS` (1000): its retry policy
//! (fixed backoff, no jitter).
//! Records: `HINCRBY probe:handled <event id> 1`, `HINCRBY probe:by-pid <pid> 1`,
//! `HINCRBY probe:attempts <event id> 1` and `RPUSH probe:times:<event id> <ms>` on
//! every attempt.

use std::sync::Arc;
use std::time::Duration;

use strategist::events::{self, system::SystemBenchPing};
use strategist_actors::{
    BackoffStrategy, Engine, EngineConfig, Event, HandlerError, Health, Hooks, Pool, PoolOptions,
    RetryPolicy,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::process::ExitCode {
    let result = actix::System::new().block_on(async {
        let _telemetry = strategist::telemetry::init();
        run().await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL")?;
    let group = std::env::var("PROBE_GROUP").unwrap_or_else(|_| "probe".into());
    let handle_ms = env("PROBE_HANDLE_MS", 0);
    let block_ms = env("PROBE_BLOCK_MS", 0);
    let claim_idle = env("PROBE_CLAIM_IDLE_MS", 1000);
    let client = redis::Client::open(url)?;
    let shared = redis::aio::ConnectionManager::new(client.clone()).await?;
    let mut pool = Pool::new(
        group,
        PoolOptions {
            workers: env("PROBE_WORKERS", 4) as usize,
            block_ms: 200,
            claim_idle_ms: claim_idle,
            claim_interval_ms: (claim_idle / 4).max(10),
            consumer_gc_idle_ms: env("PROBE_GC_IDLE_MS", 3_600_000),
            retry: RetryPolicy {
                max_attempts: env("PROBE_MAX_ATTEMPTS", 3) as u32,
                backoff_strategy: BackoffStrategy::Fixed,
                base_delay_ms: env("PROBE_BASE_DELAY_MS", 1000),
                max_delay_ms: env("PROBE_BASE_DELAY_MS", 1000),
                jitter: false,
            },
            ..PoolOptions::default()
        },
    );
    let recorder = shared.clone();
    let pid = std::process::id();
    let fail_times = env("PROBE_FAIL_TIMES", 0) as i64;
    pool.on(move |ev: Event<SystemBenchPing>| {
        let mut conn = recorder.clone();
        async move {
            let id = ev.envelope.id.to_string();
            let now = chrono::Utc::now().timestamp_millis();
            let (attempt,): (i64,) = redis::pipe()
                .cmd("HINCRBY")
                .arg("probe:attempts")
                .arg(&id)
                .arg(1)
                .cmd("RPUSH")
                .arg(format!("probe:times:{id}"))
                .arg(now)
                .ignore()
                .query_async(&mut conn)
                .await
                .map_err(HandlerError::retryable)?;
            if attempt <= fail_times {
                return Err(HandlerError::retryable(format!(
                    "attempt {attempt} fails on purpose"
                )));
            }
            if block_ms > 0 {
                std::thread::sleep(Duration::from_millis(block_ms));
            }
            tokio::time::sleep(Duration::from_millis(handle_ms)).await;
            redis::pipe()
                .cmd("HINCRBY")
                .arg("probe:handled")
                .arg(ev.envelope.id.to_string())
                .arg(1)
                .ignore()
                .cmd("HINCRBY")
                .arg("probe:by-pid")
                .arg(pid)
                .arg(1)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(HandlerError::retryable)
        }
    });
    let engine = Engine::start(
        client,
        shared,
        Arc::new(events::catalog()),
        EngineConfig::for_this_process(),
        vec![pool],
        Health::default(),
        Hooks::default(),
    )
    .await?;
    tracing::info!(pid, "probe ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    term.recv().await;
    let drained = engine
        .drain(Duration::from_millis(env("PROBE_GRACE_MS", 10_000)))
        .await;
    tracing::info!(drained, "probe stopped");
    engine.stop();
    Ok(())
}
