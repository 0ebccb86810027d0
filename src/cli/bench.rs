//! `strategist bench`: throughput and latency of the real bus, next to the ceiling of
//! raw Redis measured in the same run on the same server.
//!
//! Four phases, one after the other on one Redis:
//! 1. ceiling: a tight pipelined `XADD` producer and `XREADGROUP` + `XACK` consumers,
//!    no framework, the best of 1, 2 and 4 consumers on the same entry shape, so the
//!    ratio is against what this Redis can really do;
//! 2. throughput: N `system.bench.ping` events through the validated publisher to a
//!    no-op pool, publish to ack;
//! 3. latency: the same pool fed at half the rate phase 2 reached, publish to handled;
//! 4. paced: the same pool fed at a fixed rate (`--paced-rate`, 10,000/s by default)
//!    for the design's latency target, with this process's RSS while it runs;
//! 5. with `--observability-cost`: phase 2 with metrics and tracing off and on,
//!    alternating ([`super::bench_observability`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use strategist_actors::Conn;
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
    /// Events per second of the paced phase (0: skip it).
    pub paced_rate: u64,
    /// Pairs of off/on rounds of the observability comparison (0: skip it).
    pub observability_rounds: usize,
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
    /// Phase 4: publish-to-handled latency at `paced_rate_per_sec`.
    pub paced_latency_ms: Option<Percentiles>,
    /// Phase 4: the rate it was fed at.
    pub paced_rate_per_sec: u64,
    /// Phase 4: the most resident memory of this process (engine and publisher)
    /// while it ran, in MiB.
    pub paced_rss_mib: Option<f64>,
    /// Phase 1: the raw Redis loop, per number of consumers tried.
    pub redis_ceiling_by_consumers: Vec<(usize, f64)>,
    /// Phase 1: the best of those.
    pub redis_ceiling_events_per_sec: f64,
    /// `events_per_sec / redis_ceiling_events_per_sec`.
    pub ratio: f64,
    /// Phase 5: metrics and tracing off against on.
    pub observability_cost: Option<super::bench_observability::ObservabilityCost>,
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
        durability: "master".into(),
        durability_timeout_ms: 1000,
    };
    let (client, shared) = redis_conn::connect(&settings).await?;
    let mut by_consumers = Vec::new();
    for consumers in [1usize, 2, 4] {
        let key = format!("{}ceiling-{consumers}", settings.stream_prefix);
        let rate = ceiling(&client, &key, args.events, args.payload_bytes, consumers).await?;
        by_consumers.push((consumers, rate.round()));
    }
    let ceiling = by_consumers.iter().map(|(_, r)| *r).fold(0.0, f64::max);
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
        client.clone(),
        shared.clone(),
        catalog.clone(),
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
    let published_in = publish_all(&publisher, args.events, &pad).await?;
    wait_acked(&acked, args.events, Duration::from_secs(600)).await?;
    let total = start.elapsed();
    let events_per_sec = args.events as f64 / total.as_secs_f64();
    let publish_per_sec = args.events as f64 / published_in.as_secs_f64();

    // Phase 3: half that rate, paced every millisecond.
    let rate = events_per_sec / 2.0;
    let n3 = args
        .events
        .min((rate * 10.0) as u64)
        .max(1000.min(args.events));
    let paced = Paced {
        publisher: &publisher,
        acked: &acked,
        latencies: &latencies,
        pad: &pad,
    };
    let latency = paced.run(rate, n3).await?;
    // Phase 4: the fixed rate of the design's target, for about five seconds.
    let mut paced_latency = None;
    let mut paced_rss = None;
    if args.paced_rate > 0 {
        let n4 = args.paced_rate * 5;
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let watch = peak.clone();
        let sampler = tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib() {
                    watch.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        paced_latency = Some(paced.run(args.paced_rate as f64, n4).await?);
        sampler.abort();
        let kib = peak.load(std::sync::atomic::Ordering::Relaxed);
        paced_rss = (kib > 0).then(|| (kib as f64 / 1024.0 * 10.0).round() / 10.0);
    }
    let observability_cost = if args.observability_rounds > 0 {
        let setup = super::bench_observability::Setup {
            client: &client,
            shared: &shared,
            catalog: &catalog,
            prefix: &settings.stream_prefix,
            events: args.events,
            workers: args.workers,
            prefetch: args.prefetch,
            pad: &pad,
        };
        Some(super::bench_observability::run(&setup, args.observability_rounds).await?)
    } else {
        None
    };
    let report = BenchReport {
        events: args.events,
        workers: args.workers,
        payload_bytes: args.payload_bytes,
        prefetch: args.prefetch,
        dedupe_window_ms: args.dedupe_window_ms,
        events_per_sec: events_per_sec.round(),
        publish_per_sec: publish_per_sec.round(),
        latency_ms: latency,
        latency_rate_per_sec: rate.round(),
        paced_latency_ms: paced_latency,
        paced_rate_per_sec: args.paced_rate,
        paced_rss_mib: paced_rss,
        redis_ceiling_by_consumers: by_consumers,
        redis_ceiling_events_per_sec: ceiling.round(),
        ratio: (events_per_sec / ceiling * 1000.0).round() / 1000.0,
        observability_cost,
    };
    engine.drain(Duration::from_secs(5)).await;
    cleanup(shared, &settings.stream_prefix).await;
    engine.stop();
    Ok(report)
}

/// Feeds the pool at a fixed rate and measures publish-to-handled latency.
struct Paced<'a, A: Fn() -> StatsSnapshot> {
    publisher: &'a Publisher,
    acked: &'a A,
    latencies: &'a Mutex<Vec<u64>>,
    pad: &'a str,
}

impl<A: Fn() -> StatsSnapshot> Paced<'_, A> {
    /// Publishes `n` events at `rate` per second (a batch every millisecond) and
    /// waits until all are handled.
    async fn run(&self, rate: f64, n: u64) -> anyhow::Result<Percentiles> {
        if let Ok(mut l) = self.latencies.lock() {
            l.clear();
        }
        let before = (self.acked)().acked;
        let start = Instant::now();
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while sent < n {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(n);
            if due > sent {
                let batch: Vec<(&str, Envelope)> = (sent..due)
                    .map(|i| (streams::SYSTEM, ping(i, self.pad)))
                    .collect();
                sent = due;
                let p = self.publisher.clone();
                tokio::spawn(async move { p.publish_batch(&batch).await });
            }
        }
        wait_acked(self.acked, before + n, Duration::from_secs(600)).await?;
        let mut lat = self.latencies.lock().map(|l| l.clone()).unwrap_or_default();
        lat.sort_unstable();
        let pct = |p: f64| {
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
            lat.get(i).copied().unwrap_or_default() as f64 / 1000.0
        };
        Ok(Percentiles {
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
        })
    }
}

/// This process's resident memory in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(super) fn ping(seq: u64, pad: &str) -> Envelope {
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

/// Publishes `events` pings in pipelined batches (eight in flight); how long it took.
pub(super) async fn publish_all(
    publisher: &Publisher,
    events: u64,
    pad: &str,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut seq = 0u64;
    let mut in_flight = Vec::new();
    while seq < events {
        let n = (events - seq).min(BATCH as u64);
        let batch: Vec<(&str, Envelope)> = (0..n)
            .map(|i| (streams::SYSTEM, ping(seq + i, pad)))
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
    Ok(start.elapsed())
}

pub(super) async fn wait_acked(
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

/// The raw loop: a producer pipelining `XADD`s and `consumers` consumers (each on
/// its own connection) reading with `XREADGROUP COUNT` and acking each batch with
/// one `XACK`, concurrently. Events per second, publish to ack.
async fn ceiling(
    client: &strategist_actors::RedisClient,
    key: &str,
    n: u64,
    payload_bytes: usize,
    consumers: usize,
) -> anyhow::Result<f64> {
    let mut c = client
        .dedicated(strategist_actors::ConnOptions::default())
        .await?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
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
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut pc = c.clone();
    let pkey = key.to_owned();
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
    let mut readers = Vec::new();
    for i in 0..consumers {
        let mut rc = client
            .dedicated(strategist_actors::ConnOptions {
                response_timeout: Duration::from_secs(10),
                ..Default::default()
            })
            .await?;
        let (key, done) = (key.to_owned(), done.clone());
        readers.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            while done.load(Relaxed) < n {
                let v: redis::Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg(format!("c{i}"))
                    .arg("COUNT")
                    .arg(BATCH)
                    .arg("BLOCK")
                    .arg(20)
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
                done.fetch_add(acked, Relaxed);
            }
            Ok::<_, redis::RedisError>(())
        }));
    }
    for r in readers {
        r.await??;
    }
    producer.await??;
    let secs = start.elapsed().as_secs_f64();
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key).query_async(&mut c).await;
    Ok(n as f64 / secs)
}

pub(super) async fn cleanup(mut conn: Conn, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
    }
}
