//! The same figures as `/metrics`, pushed over OTLP when an endpoint is set
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`; off with
//! `OTEL_METRICS_EXPORTER=none` or `OTEL_SDK_DISABLED=true`), every
//! `OTEL_METRIC_EXPORT_INTERVAL` ms (60 s by default), over `http/protobuf` or
//! `http/json` (`OTEL_EXPORTER_OTLP_PROTOCOL`).
//!
//! Invariants: one [`Report`] is collected per export interval (a task reads Redis;
//! the SDK's callbacks, which cannot wait, read the latest report), so the exported
//! numbers are those `/api/v1/metrics` shows at that moment; names are the
//! Prometheus ones with dots (`strategist.group.lag`), units in `unit`; attributes
//! are `stream`, `group`, `type` and `quantile` only, never personal data.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use strategist_actors::Conn;
use strategist_actors::metrics::{Quantiles, TypeSnapshot};
use strategist_actors::{EngineMetrics, Keys, RouteSnapshot};

use super::Report;

type Latest = Arc<Mutex<Option<Report>>>;

/// Keeps the exporter alive; flushes it when shut down.
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
}

impl OtlpMetrics {
    /// Flushes and stops the exporter (off the async thread: its shutdown blocks).
    pub async fn shutdown(self) {
        let p = self.provider;
        let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// Starts the export when the environment asks for it; None when it does not, or
/// (logged) when it cannot.
pub fn start(engine: EngineMetrics, conn: Conn, keys: Keys) -> Option<OtlpMetrics> {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_METRICS_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_none()
    {
        return None;
    }
    use opentelemetry_otlp::WithExportConfig as _;
    let protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "http/protobuf".into());
    let protocol = match protocol.as_str() {
        "http/protobuf" => opentelemetry_otlp::Protocol::HttpBinary,
        "http/json" => opentelemetry_otlp::Protocol::HttpJson,
        other => {
            tracing::warn!(
                "metrics export is off: OTEL_EXPORTER_OTLP_PROTOCOL `{other}` (metrics go over http/protobuf or http/json)"
            );
            return None;
        }
    };
    let exporter = match opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("metrics export is off: {e}");
            return None;
        }
    };
    let interval = Duration::from_millis(
        env("OTEL_METRIC_EXPORT_INTERVAL")
            .and_then(|v| v.parse().ok())
            .unwrap_or(60_000)
            .max(100),
    );
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    let mut resource = opentelemetry_sdk::Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("strategist");
    }
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource.build())
        .build();
    let latest: Latest = Arc::new(Mutex::new(None));
    instruments(&provider.meter("strategist"), latest.clone());
    refresh(latest, engine, conn, keys, interval);
    Some(OtlpMetrics { provider })
}

/// Collects a report a little more often than the exporter reads one.
fn refresh(latest: Latest, engine: EngineMetrics, mut conn: Conn, keys: Keys, every: Duration) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval((every / 2).max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match Report::collect(&engine, &mut conn, &keys).await {
                Ok(r) => *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(r),
                Err(e) => tracing::debug!(error = %e, "metrics export: no queue figures"),
            }
        }
    });
}

fn type_attrs(r: &RouteSnapshot, t: &TypeSnapshot) -> [KeyValue; 3] {
    [
        KeyValue::new("stream", r.stream.clone()),
        KeyValue::new("group", r.group.clone()),
        KeyValue::new("type", t.event_type.clone()),
    ]
}

fn with<F: Fn(&Report)>(latest: &Latest, f: F) {
    if let Some(r) = latest
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        f(r);
    }
}

type Count = fn(&TypeSnapshot) -> u64;
type Window = fn(&TypeSnapshot) -> Quantiles;

fn instruments(meter: &Meter, latest: Latest) {
    let counters: [(&'static str, &'static str, Count); 3] = [
        (
            "strategist.events.handled",
            "Handler calls that succeeded.",
            |t| t.handled,
        ),
        (
            "strategist.events.failed",
            "Handler calls that failed.",
            |t| t.failed,
        ),
        (
            "strategist.events.dead_lettered",
            "Entries moved to the dead letters.",
            |t| t.dead_lettered,
        ),
    ];
    for (name, help, get) in counters {
        let l = latest.clone();
        meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| {
                with(&l, |r| {
                    for (route, t) in r.types() {
                        o.observe(get(t), &type_attrs(route, t));
                    }
                })
            })
            .build();
    }
    let windows: [(&'static str, &'static str, Window); 2] = [
        (
            "strategist.event.processing.window",
            "Processing time quantiles over the last five minutes.",
            |t| t.window.processing,
        ),
        (
            "strategist.event.latency.window",
            "Publish-to-handled latency quantiles over the last five minutes.",
            |t| t.window.latency,
        ),
    ];
    for (name, help, get) in windows {
        let l = latest.clone();
        meter
            .f64_observable_gauge(name)
            .with_description(help)
            .with_unit("s")
            .with_callback(move |o| {
                with(&l, |r| {
                    for (route, t) in r.types() {
                        let q = get(t);
                        for (quantile, ms) in
                            [("0.5", q.p50_ms), ("0.95", q.p95_ms), ("0.99", q.p99_ms)]
                        {
                            let mut attrs = type_attrs(route, t).to_vec();
                            attrs.push(KeyValue::new("quantile", quantile));
                            o.observe(ms / 1000.0, &attrs);
                        }
                    }
                })
            })
            .build();
    }
    type Group = fn(&super::GroupQueue) -> Option<f64>;
    let groups: [(&'static str, &'static str, &'static str, Group); 5] = [
        (
            "strategist.group.lag",
            "Entries not delivered to the group yet (Redis's lag).",
            "{entry}",
            |g| g.lag.map(|v| v as f64),
        ),
        (
            "strategist.group.pending",
            "Entries delivered and not acked.",
            "{entry}",
            |g| Some(g.pending as f64),
        ),
        (
            "strategist.group.queue_depth",
            "Pending plus lag.",
            "{entry}",
            |g| Some(g.queue_depth() as f64),
        ),
        (
            "strategist.group.oldest_pending_age",
            "Age of the oldest pending entry.",
            "s",
            |g| g.oldest_pending_age_ms.map(|ms| ms as f64 / 1000.0),
        ),
        (
            "strategist.group.consumers",
            "Consumers in the group.",
            "{consumer}",
            |g| Some(g.consumers as f64),
        ),
    ];
    for (name, help, unit, get) in groups {
        let l = latest.clone();
        meter
            .f64_observable_gauge(name)
            .with_description(help)
            .with_unit(unit)
            .with_callback(move |o| {
                with(&l, |r| {
                    for s in &r.queues.streams {
                        for g in &s.groups {
                            if let Some(v) = get(g) {
                                o.observe(
                                    v,
                                    &[
                                        KeyValue::new("stream", s.stream.clone()),
                                        KeyValue::new("group", g.group.clone()),
                                    ],
                                );
                            }
                        }
                    }
                })
            })
            .build();
    }
    let l = latest.clone();
    meter
        .u64_observable_gauge("strategist.stream.length")
        .with_description("Entries in the stream.")
        .with_unit("{entry}")
        .with_callback(move |o| {
            with(&l, |r| {
                for s in &r.queues.streams {
                    o.observe(s.length, &[KeyValue::new("stream", s.stream.clone())]);
                }
            })
        })
        .build();
    let l = latest.clone();
    meter
        .u64_observable_gauge("process.memory.usage")
        .with_description("Resident memory of this process.")
        .with_unit("By")
        .with_callback(move |o| {
            with(&l, |r| {
                if let Some(p) = r.process {
                    o.observe(p.rss_bytes, &[]);
                }
            })
        })
        .build();
    meter
        .f64_observable_counter("process.cpu.time")
        .with_description("User and system CPU time of this process.")
        .with_unit("s")
        .with_callback(move |o| {
            with(&latest, |r| {
                if let Some(p) = r.process {
                    o.observe(p.cpu_seconds, &[]);
                }
            })
        })
        .build();
}
