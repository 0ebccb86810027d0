//! `system.service.health` on a timer: this process's readiness, how quickly and
//! how well its handlers worked over the metrics window, and its memory and CPU.
//!
//! Invariants: every figure is measured here (readiness from the health board,
//! response time and error rate from the engine's metrics window, RSS and CPU from
//! /proc), never assumed; a report that cannot be published is logged and the next
//! one is sent on time (the timer never stops).

use std::time::{Duration, Instant};

use strategist_actors::{EngineMetrics, Envelope, EventType, Health, Publisher};

use crate::events::system::{HealthStatus, SystemServiceHealth};

/// Error rate over the window above which a ready process reports `degraded`.
pub const DEGRADED_ERROR_RATE: f64 = 0.05;

/// The figures of one report, from what was measured.
pub fn report(
    service_name: &str,
    not_ready: usize,
    metrics: &EngineMetrics,
    cpu_percent: f64,
    rss_bytes: u64,
) -> SystemServiceHealth {
    let (mut handled, mut failed, mut weighted_ms) = (0u64, 0u64, 0.0f64);
    for route in metrics.snapshot() {
        for t in route.types {
            handled += t.window.handled;
            failed += t.window.failed;
            weighted_ms += t.window.processing.mean_ms * t.window.processing.count as f64;
        }
    }
    let calls = handled + failed;
    let error_rate = if calls == 0 {
        0.0
    } else {
        failed as f64 / calls as f64
    };
    let response_time_ms = if handled == 0 {
        0.0
    } else {
        weighted_ms / handled as f64
    };
    let status = if not_ready > 0 {
        HealthStatus::Unhealthy
    } else if error_rate > DEGRADED_ERROR_RATE {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    SystemServiceHealth {
        service_name: service_name.to_string(),
        status,
        response_time_ms,
        memory_usage_mb: rss_bytes as f64 / (1024.0 * 1024.0),
        cpu_usage_percent: cpu_percent,
        error_rate,
    }
}

/// Publishes a report every `interval` until the process ends.
pub fn spawn(
    publisher: Publisher,
    health: Health,
    metrics: EngineMetrics,
    service_name: String,
    interval: Duration,
) {
    actix::spawn(async move {
        // The first report after one interval: at start nothing has been measured.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<(Instant, f64)> = None;
        loop {
            tick.tick().await;
            let process = crate::metrics::process::read().ok();
            let cpu_now = process.as_ref().map_or(0.0, |p| p.cpu_seconds);
            let cpu_percent = match last {
                Some((at, cpu)) => {
                    let wall = at.elapsed().as_secs_f64();
                    if wall > 0.0 {
                        (cpu_now - cpu).max(0.0) / wall * 100.0
                    } else {
                        0.0
                    }
                }
                None => 0.0,
            };
            last = Some((Instant::now(), cpu_now));
            let data = report(
                &service_name,
                health.not_ready().len(),
                &metrics,
                cpu_percent,
                process.map_or(0, |p| p.rss_bytes),
            );
            let env = match serde_json::to_value(&data) {
                Ok(v) => Envelope::new(SystemServiceHealth::TYPE, SystemServiceHealth::VERSION, v),
                Err(_) => continue,
            };
            if let Err(e) = publisher.publish(SystemServiceHealth::STREAM, &env).await {
                tracing::warn!(error = %e, "could not publish system.service.health");
            }
        }
    });
}
