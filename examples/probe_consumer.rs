//! A consumer process built on the engine, for tests and as a minimal example of
//! using `strategist-actors` from another program: one pool that handles
//! `system.bench.ping` by recording, in Redis, which event it handled and in which
//! process. Tests run several of these, kill some, and read the record.
//!
//! Environment: `REDIS_URL`; `PROBE_GROUP` (default `probe`); `PROBE_WORKERS` (4);
//! `PROBE_HANDLE_MS` (0): how long each handler sleeps before recording;
//! `PROBE_CLAIM_IDLE_MS` (1000); `PROBE_GRACE_MS` (10000); `PROBE_GC_IDLE_MS`
//! (3600000): consumers silent this long with nothing pending are removed.
//! Records: `HINCRBY probe:handled <event id> 1`, `HINCRBY probe:by-pid <pid> 1`.

use std::sync::Arc;
use std::time::Duration;

use strategist::events::{self, system::SystemBenchPing};
use strategist_actors::{
    Engine, EngineConfig, Event, HandlerError, Health, Hooks, Pool, PoolOptions,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::process::ExitCode {
    strategist::telemetry::init();
    let result = actix::System::new().block_on(run());
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
            ..PoolOptions::default()
        },
    );
    let recorder = shared.clone();
    let pid = std::process::id();
    pool.on(move |ev: Event<SystemBenchPing>| {
        let mut conn = recorder.clone();
        async move {
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
