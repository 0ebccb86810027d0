//! The design's metrics, measured once and shown in two places that agree:
//! `GET /api/v1/metrics` (the design's `EventPerformanceMetrics`, JSON) and
//! `GET /metrics` (Prometheus text), and pushed over OTLP when an endpoint is set
//! ([`otlp`]).
//!
//! A [`Report`] gathers, at one moment, the three sources there are:
//! - the engine's measurements of the handler calls this process made
//!   ([`strategist_actors::metrics`]: counts, processing time, latency, per stream,
//!   group and event type, over a sliding window of five minutes);
//! - the queue figures of the whole system, read from Redis ([`queues`]), and
//!   Redis's memory against its limit ([`redis_memory`]);
//! - this process's memory and CPU ([`process`]).
//!
//! Both views are computed from one `Report` by pure functions ([`Report::document`],
//! [`prometheus::encode`]), so they cannot disagree about what was measured.
//!
//! Invariants: labels and fields carry stream, group and event type names only, never
//! personal data; times are milliseconds in the JSON and seconds in Prometheus.

pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod queues;
pub mod redis_memory;

use serde::Serialize;
use strategist_actors::Conn;
use strategist_actors::metrics::{SLOT, SLOTS, TypeSnapshot};
use strategist_actors::{EngineMetrics, Keys, RouteSnapshot};

pub use process::ProcessFigures;
pub use queues::{GroupQueue, QueueError, QueueFigures};
pub use redis_memory::RedisMemory;

/// Everything measured, at one moment.
#[derive(Debug, Clone)]
pub struct Report {
    /// This process's routers and their per type figures.
    pub routes: Vec<RouteSnapshot>,
    /// Redis's queue figures of every stream.
    pub queues: QueueFigures,
    /// Redis's memory (the fullest master on a cluster), when it could be read.
    pub redis_memory: Option<RedisMemory>,
    /// This process's memory and CPU (None where `/proc` cannot be read).
    pub process: Option<ProcessFigures>,
    /// What the scaler did to this process's pools (empty unless the caller adds
    /// the scaler's board).
    pub scaling: Vec<crate::scaler::PoolScaling>,
}

impl Report {
    /// Reads the three sources now.
    pub async fn collect(
        engine: &EngineMetrics,
        conn: &mut Conn,
        keys: &Keys,
    ) -> Result<Report, QueueError> {
        let queues = queues::read(conn, keys, &crate::events::streams::ALL).await?;
        let redis_memory = redis_memory::read(conn).await;
        let process = process::read()
            .inspect_err(|e| tracing::debug!(error = %e, "no process figures"))
            .ok();
        Ok(Report {
            routes: engine.snapshot(),
            queues,
            redis_memory,
            process,
            scaling: Vec::new(),
        })
    }

    /// Entries running on this process's workers for `stream`/`group` now.
    pub fn in_flight(&self, stream: &str, group: &str) -> u64 {
        self.routes
            .iter()
            .filter(|r| r.stream == stream && r.group == group)
            .map(|r| r.stats.in_flight)
            .sum()
    }

    /// Every (route, type) pair measured here.
    pub fn types(&self) -> impl Iterator<Item = (&RouteSnapshot, &TypeSnapshot)> {
        self.routes
            .iter()
            .flat_map(|r| r.types.iter().map(move |t| (r, t)))
    }

    /// The JSON document of `GET /api/v1/metrics`.
    pub fn document(&self) -> MetricsDocument {
        let events = self
            .types()
            .map(|(r, t)| {
                let w = &t.window;
                EventPerformanceMetrics {
                    stream_name: r.stream.clone(),
                    group: r.group.clone(),
                    event_type: t.event_type.clone(),
                    throughput_per_minute: w.throughput_per_minute(),
                    processing_time_avg: w.processing.mean_ms,
                    processing_time_p50: w.processing.p50_ms,
                    processing_time_p95: w.processing.p95_ms,
                    processing_time_p99: w.processing.p99_ms,
                    latency_avg: w.latency.mean_ms,
                    latency_p50: w.latency.p50_ms,
                    latency_p95: w.latency.p95_ms,
                    latency_p99: w.latency.p99_ms,
                    success_rate: w.success_rate(),
                    error_rate: w.error_rate(),
                    handled_total: t.handled,
                    failed_total: t.failed,
                    dead_lettered_total: t.dead_lettered,
                }
            })
            .collect();
        let mut groups = Vec::new();
        let mut streams = Vec::new();
        for s in &self.queues.streams {
            streams.push(StreamMetrics {
                stream_name: s.stream.clone(),
                length: s.length,
            });
            for g in &s.groups {
                groups.push(GroupMetrics {
                    stream_name: s.stream.clone(),
                    group: g.group.clone(),
                    consumers: g.consumers,
                    pending: g.pending,
                    consumer_lag: g.lag,
                    entries_read: g.entries_read,
                    last_delivered_id: g.last_delivered_id.clone(),
                    queue_depth: g.queue_depth(),
                    oldest_pending_age_ms: g.oldest_pending_age_ms,
                    in_flight: self.in_flight(&s.stream, &g.group),
                    dead_letters_per_minute: g.dead_letters_per_minute(),
                });
            }
        }
        let pools = self
            .routes
            .iter()
            .map(|r| PoolMetrics {
                stream_name: r.stream.clone(),
                group: r.group.clone(),
                consumer_prefix: r.consumer_prefix.clone(),
                workers: r.stats.workers,
                restarts: r.stats.restarts,
                in_flight: r.stats.in_flight,
            })
            .collect();
        MetricsDocument {
            window_seconds: SLOT.as_secs() * SLOTS as u64,
            events,
            groups,
            streams,
            pools,
            scaling: self.scaling.clone(),
            redis_memory: self.redis_memory,
            process: self.process,
        }
    }
}

/// The answer of `GET /api/v1/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsDocument {
    /// The sliding window rates and percentiles are computed over, in seconds.
    pub window_seconds: u64,
    /// Per stream, consumer group and event type handled in this process.
    pub events: Vec<EventPerformanceMetrics>,
    /// Per stream and consumer group, from Redis (the whole system).
    pub groups: Vec<GroupMetrics>,
    /// Per stream, from Redis.
    pub streams: Vec<StreamMetrics>,
    /// This process's pools, per stream they read.
    pub pools: Vec<PoolMetrics>,
    /// The scaler's view of each pool it scales here: metric, bounds, workers,
    /// what the last sample asked for, changes.
    pub scaling: Vec<crate::scaler::PoolScaling>,
    /// Redis's memory against its `maxmemory` (the fullest master on a cluster):
    /// at the limit publishes are refused with 503 `redis_full`.
    pub redis_memory: Option<RedisMemory>,
    /// This process.
    pub process: Option<ProcessFigures>,
}

/// The design's `EventPerformanceMetrics`, per consumer group too (two groups
/// handling one type are measured apart), with latency and totals added. Times in
/// milliseconds; rates and percentiles over the window.
#[derive(Debug, Clone, Serialize)]
pub struct EventPerformanceMetrics {
    /// The stream.
    pub stream_name: String,
    /// The consumer group that handled it.
    pub group: String,
    /// The event type.
    pub event_type: String,
    /// Handler calls per minute.
    pub throughput_per_minute: f64,
    /// Mean processing time (the handler call), ms.
    pub processing_time_avg: f64,
    /// Median processing time, ms.
    pub processing_time_p50: f64,
    /// 95th percentile of processing time, ms.
    pub processing_time_p95: f64,
    /// 99th percentile of processing time, ms.
    pub processing_time_p99: f64,
    /// Mean time from publish to handled, ms.
    pub latency_avg: f64,
    /// Median latency, ms.
    pub latency_p50: f64,
    /// 95th percentile of latency, ms.
    pub latency_p95: f64,
    /// 99th percentile of latency, ms.
    pub latency_p99: f64,
    /// Share of calls that succeeded.
    pub success_rate: f64,
    /// Share of calls that failed.
    pub error_rate: f64,
    /// Successful calls since this process started.
    pub handled_total: u64,
    /// Failed calls since this process started.
    pub failed_total: u64,
    /// Dead letters since this process started.
    pub dead_lettered_total: u64,
}

/// One consumer group, from Redis.
#[derive(Debug, Clone, Serialize)]
pub struct GroupMetrics {
    /// The stream.
    pub stream_name: String,
    /// The group.
    pub group: String,
    /// Consumers in it.
    pub consumers: u64,
    /// Delivered, not acked.
    pub pending: u64,
    /// Redis's `lag` (null when it cannot tell; Redis 7.0 is wrong after deletions:
    /// judge it with `entries_read` and `last_delivered_id`).
    pub consumer_lag: Option<u64>,
    /// Entries the group has read, as Redis says.
    pub entries_read: Option<u64>,
    /// The last entry delivered to the group.
    pub last_delivered_id: Option<String>,
    /// Pending plus lag.
    pub queue_depth: u64,
    /// Age of the oldest pending entry, ms (null when none).
    pub oldest_pending_age_ms: Option<u64>,
    /// Entries running on this process's workers now.
    pub in_flight: u64,
    /// Dead letters of the group per minute over the window.
    pub dead_letters_per_minute: f64,
}

/// One pool's router of one stream in this process.
#[derive(Debug, Clone, Serialize)]
pub struct PoolMetrics {
    /// The stream.
    pub stream_name: String,
    /// The pool (its consumer group).
    pub group: String,
    /// This process's consumers in the group: worker `n` is
    /// `<consumer_prefix>-<n>` in `XINFO CONSUMERS`.
    pub consumer_prefix: String,
    /// Workers behind the router now.
    pub workers: u64,
    /// Restarts of its workers and router since the process started.
    pub restarts: u64,
    /// Entries running on its workers now.
    pub in_flight: u64,
}

/// One stream, from Redis.
#[derive(Debug, Clone, Serialize)]
pub struct StreamMetrics {
    /// The stream.
    pub stream_name: String,
    /// Entries in it.
    pub length: u64,
}
