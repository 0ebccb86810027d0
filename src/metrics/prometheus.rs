//! A [`Report`] as Prometheus text (format 0.0.4), written with prometheus-client:
//! one collector encodes the report it was given, so every scrape shows one
//! consistent moment and nothing is kept between scrapes.
//!
//! Names follow Prometheus's conventions (base units, `_total` on counters); labels
//! are `stream`, `group`, `type` and `quantile` only. The per group gauges (`lag`,
//! `pending`, `oldest_pending_age_seconds`) are read from Redis, so any process
//! gives the same values: they are what an outer autoscaler scales on.

use std::fmt::Error;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use strategist_actors::metrics::{BUCKETS_S, BucketCounts, Quantiles, TypeSnapshot};

use super::Report;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Encodes `report`.
pub fn encode(report: Report) -> Result<String, Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ReportCollector(report)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct ReportCollector(Report);

type Counts = fn(&TypeSnapshot) -> u64;
type Timing = fn(&TypeSnapshot) -> &BucketCounts;
type Window = fn(&TypeSnapshot) -> Quantiles;

const COUNTERS: [(&str, &str, Counts); 3] = [
    (
        "strategist_events_handled",
        "Handler calls that succeeded, since the process started.",
        |t| t.handled,
    ),
    (
        "strategist_events_failed",
        "Handler calls that failed (each retry counts), since the process started.",
        |t| t.failed,
    ),
    (
        "strategist_events_dead_lettered",
        "Entries moved to the dead letters, since the process started.",
        |t| t.dead_lettered,
    ),
];

const HISTOGRAMS: [(&str, &str, Timing); 2] = [
    (
        "strategist_event_processing",
        "Time a handler call took.",
        |t| &t.processing,
    ),
    (
        "strategist_event_latency",
        "Time from publish (the entry id's time) to handled, of successful calls.",
        |t| &t.latency,
    ),
];

const WINDOWS: [(&str, &str, Window); 2] = [
    (
        "strategist_event_processing_window",
        "Processing time quantiles over the last five minutes (as in /api/v1/metrics).",
        |t| t.window.processing,
    ),
    (
        "strategist_event_latency_window",
        "Latency quantiles over the last five minutes (as in /api/v1/metrics).",
        |t| t.window.latency,
    ),
];

impl Collector for ReportCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), Error> {
        let r = &self.0;
        let seconds = Unit::Seconds;
        for (name, help, get) in COUNTERS {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (route, t) in r.types() {
                let labels = [
                    ("stream", route.stream.as_str()),
                    ("group", route.group.as_str()),
                    ("type", t.event_type.as_str()),
                ];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&get(t), None)?;
            }
        }
        for (name, help, get) in HISTOGRAMS {
            let mut m = enc.encode_descriptor(name, help, Some(&seconds), MetricType::Histogram)?;
            for (route, t) in r.types() {
                let labels = [
                    ("stream", route.stream.as_str()),
                    ("group", route.group.as_str()),
                    ("type", t.event_type.as_str()),
                ];
                let b = get(t);
                let buckets: Vec<(f64, u64)> = BUCKETS_S
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(b.counts.iter().copied())
                    .collect();
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    b.sum_seconds,
                    b.count,
                    &buckets,
                    None,
                )?;
            }
        }
        for (name, help, get) in WINDOWS {
            let mut m = enc.encode_descriptor(name, help, Some(&seconds), MetricType::Gauge)?;
            for (route, t) in r.types() {
                let q = get(t);
                for (quantile, ms) in [("0.5", q.p50_ms), ("0.95", q.p95_ms), ("0.99", q.p99_ms)] {
                    let labels = [
                        ("stream", route.stream.as_str()),
                        ("group", route.group.as_str()),
                        ("type", t.event_type.as_str()),
                        ("quantile", quantile),
                    ];
                    m.encode_family(&labels)?.encode_gauge(&(ms / 1000.0))?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "strategist_event_throughput_per_minute",
            "Handler calls per minute over the last five minutes (as in /api/v1/metrics).",
            None,
            MetricType::Gauge,
        )?;
        for (route, t) in r.types() {
            let labels = [
                ("stream", route.stream.as_str()),
                ("group", route.group.as_str()),
                ("type", t.event_type.as_str()),
            ];
            m.encode_family(&labels)?
                .encode_gauge(&t.window.throughput_per_minute())?;
        }

        let mut m = enc.encode_descriptor(
            "strategist_stream_length",
            "Entries in the stream (Redis XLEN).",
            None,
            MetricType::Gauge,
        )?;
        for s in &r.queues.streams {
            m.encode_family(&[("stream", s.stream.as_str())])?
                .encode_gauge(&s.length)?;
        }

        type Group = fn(&super::GroupQueue) -> Option<f64>;
        let group_gauges: [(&str, &str, Option<&Unit>, Group); 7] = [
            (
                "strategist_group_lag",
                "Entries the group has not been delivered yet (Redis XINFO GROUPS lag; absent when Redis cannot tell).",
                None,
                |g| g.lag.map(|v| v as f64),
            ),
            (
                "strategist_group_pending",
                "Entries delivered to the group and not acked yet (Redis XPENDING).",
                None,
                |g| Some(g.pending as f64),
            ),
            (
                "strategist_group_queue_depth",
                "Pending plus lag.",
                None,
                |g| Some(g.queue_depth() as f64),
            ),
            (
                "strategist_group_oldest_pending_age",
                "Age of the group's oldest pending entry by Redis's clock (0 when none).",
                Some(&seconds),
                |g| Some(g.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0),
            ),
            (
                "strategist_group_entries_read",
                "Entries the group has read (Redis XINFO GROUPS entries-read).",
                None,
                |g| g.entries_read.map(|v| v as f64),
            ),
            (
                "strategist_group_consumers",
                "Consumers in the group.",
                None,
                |g| Some(g.consumers as f64),
            ),
            (
                "strategist_group_dead_letters_per_minute",
                "Dead letters of the group per minute over the last five minutes.",
                None,
                |g| Some(g.dead_letters_per_minute()),
            ),
        ];
        for (name, help, unit, get) in group_gauges {
            let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
            for s in &r.queues.streams {
                for g in &s.groups {
                    if let Some(v) = get(g) {
                        m.encode_family(&[
                            ("stream", s.stream.as_str()),
                            ("group", g.group.as_str()),
                        ])?
                        .encode_gauge(&v)?;
                    }
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "strategist_group_in_flight",
            "Entries running on this process's workers now.",
            None,
            MetricType::Gauge,
        )?;
        for route in &r.routes {
            m.encode_family(&[
                ("stream", route.stream.as_str()),
                ("group", route.group.as_str()),
            ])?
            .encode_gauge(&route.stats.in_flight)?;
        }
        let mut m = enc.encode_descriptor(
            "strategist_pool_workers",
            "Workers of the pool behind this process's router of the stream.",
            None,
            MetricType::Gauge,
        )?;
        for route in &r.routes {
            m.encode_family(&[
                ("stream", route.stream.as_str()),
                ("group", route.group.as_str()),
            ])?
            .encode_gauge(&route.stats.workers)?;
        }
        let mut m = enc.encode_descriptor(
            "strategist_pool_restarts",
            "Restarts of the pool's workers (after a panic) and of its router, in this process.",
            None,
            MetricType::Counter,
        )?;
        for route in &r.routes {
            m.encode_family(&[
                ("stream", route.stream.as_str()),
                ("group", route.group.as_str()),
            ])?
            .encode_counter::<NoLabelSet, _, u64>(&route.stats.restarts, None)?;
        }

        let mut m = enc.encode_descriptor(
            "strategist_pool_desired_workers",
            "Workers the scaler's last sample asked for (within min and max).",
            None,
            MetricType::Gauge,
        )?;
        for p in &r.scaling {
            m.encode_family(&[("group", p.pool.as_str())])?
                .encode_gauge(&(p.desired as u64))?;
        }
        let mut m = enc.encode_descriptor(
            "strategist_pool_scale_changes",
            "Worker count changes the scaler made in this process.",
            None,
            MetricType::Counter,
        )?;
        for p in &r.scaling {
            m.encode_family(&[("group", p.pool.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&p.changes, None)?;
        }

        if let Some(m) = r.redis_memory {
            enc.encode_descriptor(
                "strategist_redis_memory_used",
                "Redis used_memory (the fullest master on a cluster).",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?
            .encode_gauge(&m.used_bytes)?;
            enc.encode_descriptor(
                "strategist_redis_memory_max",
                "Redis maxmemory of that server (0: no limit); at the limit publishes are refused.",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?
            .encode_gauge(&m.max_bytes)?;
        }
        if let Some(p) = r.process {
            enc.encode_descriptor(
                "process_resident_memory",
                "Resident memory of this process.",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?
            .encode_gauge(&p.rss_bytes)?;
            enc.encode_descriptor(
                "process_cpu",
                "User and system CPU time of this process.",
                Some(&seconds),
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, f64>(&p.cpu_seconds, None)?;
        }
        Ok(())
    }
}
