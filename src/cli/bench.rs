//! `strategist bench`: throughput and latency of the real bus, next to the ceiling of
//! raw Redis measured in the same run on the same server.
//!
//! Three phases, one after the other on one Redis:
//! 1. ceiling: a tight pipelined `XADD` + `XREADGROUP` + `XACK` loop, no framework;
//! 2. throughput: N `system.bench.ping` events through the validated publisher to a
//!    no-op pool, publish to ack;
//! 3. latency: the same pool fed at half the rate phase 2 reached, publish to handled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use serde::Serialize;
use strategist_actors::{
    Engine, EngineConfig, Envelope, Event, Health, Hooks, Keys, Pool, PoolOptions, Publisher,
    StatsSnapshot,
};

use crate::config::RedisSettings;
use crate::events::system::SystemBenchPing;
use crate::events::{self, streams};
use crate::local_redis::LocalRedis;
use crate::redis_conn;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// Events per phase.
    pub events: u64,
    /// Workers in the no-op pool.
    pub workers: usize,
    /// Bytes of padding per payload.
    pub payload_bytes: usize,
    /// Entries queued per worker (the pool option of the same name).
    pub prefetch: usize,
    /// The publisher's de-duplication window, as `serve` uses it.
    pub dedupe_window_ms: u64,
    /// A Redis to use instead of a private one (it is written to under a prefix).
    pub redis_url: Option<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Events per phase.
    pub events: u64,
    /// Workers.
    pub workers: usize,
    /// Payload padding.
    pub payload_bytes: usize,
    /// Entries queued per worker.
    pub prefetch: usize,
    /// The publisher's de-duplication window (0: off).
    pub dedupe_window_ms: u64,
    /// Phase 2: events published and acked per second, end to end.
    pub events_per_sec: f64,
    /// Phase 2: events published per second.
    pub publish_per_sec: f64,
    /// Phase 3: publish-to-handled latency at `latency_rate_per_sec`.
    pub latency_ms: Percentiles,
    /// The rate phase 3 was fed at (half of `events_per_sec`).
    pub latency_rate_per_sec: f64,
    /// Phase 1: the raw Redis loop.
    pub redis_ceiling_events_per_sec: f64,
    /// `events_per_sec / redis_ceiling_events_per_sec`.
    pub ratio: f64,
}

const BATCH: usize = 256;

/// Runs the three phases.
pub async fn run(args: BenchArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(args.workers > 0, "--workers must be at least 1");
    let _private;
    let url = match &args.redis_url {
        Some(u) => u.clone(),
        None => {
            let r = LocalRedis::start().context("starting a private redis-server")?;
            let u = r.url();
            _private = r;
            u
        }
    };
    let settings = RedisSettings {
        url,
        stream_prefix: format!("bench-{}:", ulid::Ulid::generate()),
        connect_timeout_ms: 5000,
        response_timeout_ms: 30_000,
    };
    let (client, shared) = redis_conn::connect(&settings).await?;
    let ceiling = ceiling(
        &client,
        &settings.stream_prefix,
        args.events,
        args.payload_bytes,
    )
    .await?;
    let keys = Keys::new(settings.stream_prefix.clone());
    let catalog = Arc::new(events::catalog());
    let publisher = Publisher::new(shared.clone(), keys.clone(), catalog.clone())
        .with_dedupe_window_ms(args.dedupe_window_ms);

    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(args.events as usize)));
    let recording = latencies.clone();
    let mut pool = Pool::new(
        "bench",
        PoolOptions {
            workers: args.workers,
            prefetch: args.prefetch,
            block_ms: 100,
            ..PoolOptions::default()
        },
    );
    pool.on(move |ev: Event<SystemBenchPing>| {
        let lat = now_us().saturating_sub(ev.data.sent_at_us).max(0) as u64;
        if let Ok(mut l) = recording.lock() {
            l.push(lat);
        }
        async { Ok(()) }
    });
    let mut config = EngineConfig::for_this_process();
    config.keys = keys;
    let engine = Engine::start(
        client,
        shared.clone(),
        catalog,
        config,
        vec![pool],
        Health::default(),
        Hooks::default(),
    )
    .await?;
    let stats = engine.routes()[0].stats.clone();
    let acked = move || stats.snapshot();

    // Phase 2: as fast as it goes.
    let pad = "x".repeat(args.payload_bytes);
    let start = Instant::now();
    let mut seq = 0u64;
    let mut in_flight = Vec::new();
    while seq < args.events {
        let n = (args.events - seq).min(BATCH as u64);
        let batch: Vec<(&str, Envelope)> = (0..n)
            .map(|i| (streams::SYSTEM, ping(seq + i, &pad)))
            .collect();
        seq += n;
        let p = publisher.clone();
        in_flight.push(tokio::spawn(async move {
            p.publish_batch(&batch).await.map(|v| v.len())
        }));
        if in_flight.len() >= 8 {
            in_flight.remove(0).await??;
        }
    }
    for h in in_flight {
        h.await??;
    }
    let published_in = start.elapsed();
    wait_acked(&acked, args.events, Duration::from_secs(600)).await?;
    let total = start.elapsed();
    let events_per_sec = args.events as f64 / total.as_secs_f64();
    let publish_per_sec = args.events as f64 / published_in.as_secs_f64();

    // Phase 3: half that rate, paced every millisecond.
    if let Ok(mut l) = latencies.lock() {
        l.clear();
    }
    let rate = events_per_sec / 2.0;
    let n3 = args
        .events
        .min((rate * 10.0) as u64)
        .max(1000.min(args.events));
    let before = acked().acked;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while sent < n3 {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(n3);
        if due > sent {
            let batch: Vec<(&str, Envelope)> = (sent..due)
                .map(|i| (streams::SYSTEM, ping(i, &pad)))
                .collect();
            sent = due;
            let p = publisher.clone();
            tokio::spawn(async move { p.publish_batch(&batch).await });
        }
    }
    wait_acked(&acked, before + n3, Duration::from_secs(600)).await?;
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
        lat.get(i).copied().unwrap_or_default() as f64 / 1000.0
    };
    let report = BenchReport {
        events: args.events,
        workers: args.workers,
        payload_bytes: args.payload_bytes,
        prefetch: args.prefetch,
        dedupe_window_ms: args.dedupe_window_ms,
        events_per_sec: events_per_sec.round(),
        publish_per_sec: publish_per_sec.round(),
        latency_ms: Percentiles {
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
        },
        latency_rate_per_sec: rate.round(),
        redis_ceiling_events_per_sec: ceiling.round(),
        ratio: (events_per_sec / ceiling * 1000.0).round() / 1000.0,
    };
    engine.drain(Duration::from_secs(5)).await;
    cleanup(shared, &settings.stream_prefix).await;
    engine.stop();
    Ok(report)
}

fn ping(seq: u64, pad: &str) -> Envelope {
    let data = SystemBenchPing {
        seq,
        sent_at_us: now_us(),
        pad: pad.to_owned(),
    };
    Envelope::new(
        "system.bench.ping",
        1,
        serde_json::to_value(data).unwrap_or_default(),
    )
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn wait_acked(
    acked: &impl Fn() -> StatsSnapshot,
    target: u64,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while acked().acked < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {target} events acked in {limit:?}",
            acked().acked
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Ok(())
}

/// The raw loop: a producer pipelining `XADD`s and a consumer reading with
/// `XREADGROUP COUNT` and acking each batch with one `XACK`, concurrently.
async fn ceiling(
    client: &redis::Client,
    prefix: &str,
    n: u64,
    payload_bytes: usize,
) -> anyhow::Result<f64> {
    let key = format!("{prefix}ceiling");
    let mut c = client.get_multiplexed_async_connection().await?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut c)
        .await?;
    let data = serde_json::to_string(&SystemBenchPing {
        seq: 0,
        sent_at_us: now_us(),
        pad: "x".repeat(payload_bytes),
    })?;
    let start = Instant::now();
    let mut pc = c.clone();
    let pkey = key.clone();
    let producer = tokio::spawn(async move {
        let mut sent = 0u64;
        while sent < n {
            let m = (n - sent).min(BATCH as u64);
            let mut pipe = redis::pipe();
            for _ in 0..m {
                pipe.cmd("XADD")
                    .arg(&pkey)
                    .arg("*")
                    .arg("id")
                    .arg("01JDQ4Z1M3T7X8Y9Z0A1B2C3D4")
                    .arg("type")
                    .arg("system.bench.ping")
                    .arg("version")
                    .arg("1")
                    .arg("timestamp")
                    .arg("2026-11-29T12:00:00.123Z")
                    .arg("data")
                    .arg(&data)
                    .ignore();
            }
            pipe.query_async::<()>(&mut pc).await?;
            sent += m;
        }
        Ok::<_, redis::RedisError>(())
    });
    let mut rc = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    let mut done = 0u64;
    while done < n {
        let v: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut rc)
            .await?;
        let ids: Vec<String> = strategist_actors::redis_io::parse_stream_reply(v)
            .into_iter()
            .map(|e| e.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let acked: u64 = redis::cmd("XACK")
            .arg(&key)
            .arg("g")
            .arg(&ids)
            .query_async(&mut rc)
            .await?;
        done += acked;
    }
    producer.await??;
    let secs = start.elapsed().as_secs_f64();
    Ok(n as f64 / secs)
}

async fn cleanup(mut conn: ConnectionManager, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
    }
}
