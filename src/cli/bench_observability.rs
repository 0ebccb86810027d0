//! `strategist bench --observability-cost`: what metrics and tracing cost the bus.
//!
//! The throughput phase of `bench` again, with the engine's measurements and the
//! application's tracing (a span per handler call, the trace context stamped on
//! every publish, exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) off
//! and on, alternating off, on, off, on on the same Redis in one run, so a noisy
//! machine shifts both sides alike. Each round runs on fresh keys and a fresh
//! engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use strategist_actors::Conn;
use strategist_actors::{
    Catalog, Engine, EngineConfig, Event, Health, Hooks, Keys, Pool, PoolOptions, Publisher,
};

use crate::events::system::SystemBenchPing;
use crate::telemetry;

/// The figures of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ObservabilityCost {
    /// Events per second of each round with metrics and tracing off.
    pub off_events_per_sec: Vec<f64>,
    /// Events per second of each round with them on.
    pub on_events_per_sec: Vec<f64>,
    /// Mean of the on rounds over mean of the off rounds.
    pub ratio_on_to_off: f64,
    /// Whether spans were exported over OTLP in the on rounds.
    pub otlp_export: bool,
}

/// What every round shares.
pub struct Setup<'a> {
    /// The Redis client (for the routers' own connections).
    pub client: &'a strategist_actors::RedisClient,
    /// The shared connection.
    pub shared: &'a Conn,
    /// The catalog.
    pub catalog: &'a Arc<Catalog>,
    /// Key prefix; each round appends its own.
    pub prefix: &'a str,
    /// Events per round.
    pub events: u64,
    /// Workers of the no-op pool.
    pub workers: usize,
    /// Entries queued per worker.
    pub prefetch: usize,
    /// Padding of each payload.
    pub pad: &'a str,
}

/// Runs `rounds` pairs of off and on.
pub async fn run(s: &Setup<'_>, rounds: usize) -> anyhow::Result<ObservabilityCost> {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        off.push(once(s, false, round).await?);
        on.push(once(s, true, round).await?);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(ObservabilityCost {
        ratio_on_to_off: (mean(&on) / mean(&off) * 1000.0).round() / 1000.0,
        off_events_per_sec: off,
        on_events_per_sec: on,
        otlp_export: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.is_empty()),
    })
}

async fn once(s: &Setup<'_>, observe: bool, round: usize) -> anyhow::Result<f64> {
    let keys = Keys::new(format!(
        "{}obs-{}-{round}:",
        s.prefix,
        if observe { "on" } else { "off" }
    ));
    let mut publisher = Publisher::new(s.shared.clone(), keys.clone(), s.catalog.clone());
    if observe {
        publisher = publisher.with_trace_context(telemetry::current_trace_context);
    }
    let mut pool = Pool::new(
        "bench-obs",
        PoolOptions {
            workers: s.workers,
            prefetch: s.prefetch,
            block_ms: 100,
            ..PoolOptions::default()
        },
    );
    pool.on(|_: Event<SystemBenchPing>| async { Ok(()) });
    let mut config = EngineConfig::for_this_process();
    config.keys = keys.clone();
    config.metrics = observe;
    let hooks = if observe {
        Hooks::default().with_span(telemetry::handler_span)
    } else {
        Hooks::default()
    };
    let engine = Engine::start(
        s.client.clone(),
        s.shared.clone(),
        s.catalog.clone(),
        config,
        vec![pool],
        Health::default(),
        hooks,
    )
    .await?;
    let stats = engine.routes()[0].stats.clone();
    let start = Instant::now();
    super::bench::publish_all(&publisher, s.events, s.pad).await?;
    super::bench::wait_acked(&|| stats.snapshot(), s.events, Duration::from_secs(600)).await?;
    let rate = s.events as f64 / start.elapsed().as_secs_f64();
    engine.drain(Duration::from_secs(5)).await;
    engine.stop();
    super::bench::cleanup(s.shared.clone(), keys.prefix()).await;
    Ok(rate.round())
}
