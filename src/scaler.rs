//! The scaler: one actor per process that moves each pool's worker count between
//! its `min_workers` and `max_workers` by the design's `scale_metric`, with the
//! engine's decision ([`strategist_actors::scaling`]: formulas, cooldown,
//! stabilisation window) and [`Engine::resize`] to apply it.
//!
//! Signals: queue length is the group's pending plus lag summed over the pool's
//! streams, read from Redis (the whole system's backlog, so every process sizes
//! itself for it: with N processes each runs up to `max_workers`); CPU is this
//! process's use over the last interval; a schedule is its cron window (UTC).
//!
//! Invariants: a pool whose `max_workers` equals its `min_workers` is never
//! touched; a sample that cannot be read leaves the count as it is; every change is
//! logged and counted on the [`ScalingBoard`], which `/api/v1/metrics` shows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use strategist_actors::Conn;
use strategist_actors::scaling::{ScalePolicy, Scaler, Signal};
use strategist_actors::{Engine, Keys, RouteInfo};

use crate::config::{ScaleMetric, ScaleSettings, ScalerSettings};

/// What the scaler did to one pool, for the metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolScaling {
    /// The pool.
    pub pool: String,
    /// `queue_length`, `cpu_usage` or `schedule`.
    pub metric: &'static str,
    /// Its threshold (entries per worker, percent; 0 for a schedule).
    pub threshold: f64,
    /// Bounds.
    pub min_workers: usize,
    /// Bounds.
    pub max_workers: usize,
    /// Workers now.
    pub workers: usize,
    /// What the last sample asked for.
    pub desired: usize,
    /// The last sample: queue depth, CPU percent, or 1/0 for a window open/closed.
    pub last_value: Option<f64>,
    /// Changes since the process started.
    pub changes: u64,
}

/// The scaler's state of every pool it scales, shared with the metrics.
#[derive(Debug, Clone, Default)]
pub struct ScalingBoard(Arc<Mutex<BTreeMap<String, PoolScaling>>>);

impl ScalingBoard {
    /// Every scaled pool now, by name.
    pub fn snapshot(&self) -> Vec<PoolScaling> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn update(&self, p: PoolScaling) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(p.pool.clone(), p);
    }
}

struct Scaled {
    pool: String,
    streams: Vec<String>,
    settings: ScaleSettings,
    window: Option<croner::Cron>,
    scaler: Scaler,
    workers: usize,
    changes: u64,
}

fn metric_name(m: ScaleMetric) -> &'static str {
    match m {
        ScaleMetric::QueueLength => "queue_length",
        ScaleMetric::CpuUsage => "cpu_usage",
        ScaleMetric::Schedule => "schedule",
    }
}

/// Starts the scaler for `pools` (name and scaling row) running in `engine`;
/// returns the board it reports to. Nothing runs when `interval_ms` is 0 or no
/// pool can grow.
pub fn spawn(
    engine: &Engine,
    pools: Vec<(String, ScaleSettings)>,
    settings: &ScalerSettings,
    conn: Conn,
    keys: Keys,
) -> ScalingBoard {
    let board = ScalingBoard::default();
    let routes: Vec<RouteInfo> = engine.routes().to_vec();
    let mut scaled: Vec<Scaled> = pools
        .into_iter()
        .filter(|(_, s)| s.max_workers > s.min_workers)
        .filter_map(|(pool, s)| {
            let streams: Vec<String> = routes
                .iter()
                .filter(|r| r.group == pool)
                .map(|r| r.stream.clone())
                .collect();
            if streams.is_empty() {
                return None;
            }
            let window = s.scale_window.as_deref().and_then(|w| w.parse().ok());
            let policy = ScalePolicy {
                min: s.min_workers.max(1),
                max: s.max_workers,
                up_cooldown: Duration::from_millis(settings.up_cooldown_ms),
                down_stabilization: Duration::from_millis(settings.down_stabilization_ms),
            };
            Some(Scaled {
                pool,
                streams,
                workers: s.min_workers.max(1),
                settings: s,
                window,
                scaler: Scaler::new(policy),
                changes: 0,
            })
        })
        .collect();
    if settings.interval_ms == 0 || scaled.is_empty() {
        return board;
    }
    for s in &scaled {
        board.update(s.report(s.workers, None));
    }
    let interval = Duration::from_millis(settings.interval_ms);
    let resize = engine.resizer();
    let out = board.clone();
    actix::spawn(async move {
        let mut conn = conn;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cpu_last: Option<(Instant, f64)> = None;
        loop {
            tick.tick().await;
            let cpu = crate::metrics::process::read().ok().map(|p| p.cpu_seconds);
            let cpu_percent = match (cpu, cpu_last) {
                (Some(now), Some((at, before))) => {
                    let wall = at.elapsed().as_secs_f64();
                    (wall > 0.0).then(|| (now - before).max(0.0) / wall * 100.0)
                }
                _ => None,
            };
            if let Some(c) = cpu {
                cpu_last = Some((Instant::now(), c));
            }
            let needs_queues = scaled
                .iter()
                .any(|s| s.settings.scale_metric == ScaleMetric::QueueLength);
            let queues = if needs_queues {
                crate::metrics::queues::read(&mut conn, &keys, &crate::events::streams::ALL)
                    .await
                    .inspect_err(|e| tracing::warn!(error = %e, "scaler: no queue figures"))
                    .ok()
            } else {
                None
            };
            for s in &mut scaled {
                let value = match s.settings.scale_metric {
                    ScaleMetric::QueueLength => queues.as_ref().map(|q| {
                        q.streams
                            .iter()
                            .filter(|st| s.streams.contains(&st.stream))
                            .flat_map(|st| st.groups.iter().filter(|g| g.group == s.pool))
                            .map(|g| g.queue_depth() as f64)
                            .sum::<f64>()
                    }),
                    ScaleMetric::CpuUsage => cpu_percent,
                    ScaleMetric::Schedule => s
                        .window
                        .as_ref()
                        .map(|w| f64::from(u8::from(window_open(w, jiff::Timestamp::now())))),
                };
                let Some(value) = value else {
                    continue;
                };
                let signal = match s.settings.scale_metric {
                    ScaleMetric::QueueLength => Signal::Queue {
                        depth: value as u64,
                        per_worker: s.settings.scale_threshold,
                    },
                    ScaleMetric::CpuUsage => Signal::Cpu {
                        percent: value,
                        target: s.settings.scale_threshold,
                    },
                    ScaleMetric::Schedule => Signal::Window { open: value > 0.0 },
                };
                let desired = s.scaler.policy().desired(&signal, s.workers);
                if let Some(n) = s.scaler.decide(Instant::now(), desired, s.workers) {
                    tracing::info!(
                        pool = %s.pool,
                        metric = metric_name(s.settings.scale_metric),
                        value,
                        from = s.workers,
                        to = n,
                        "scaling pool"
                    );
                    resize.resize(&s.pool, n);
                    s.workers = n;
                    s.changes += 1;
                }
                out.update(s.report(desired, Some(value)));
            }
        }
    });
    board
}

/// Whether the minute of `now` (UTC) is one the cron window matches. A 5-field
/// pattern names minutes, and croner matches it at second 0 only: the minute's
/// start is what is asked.
pub fn window_open(window: &croner::Cron, now: jiff::Timestamp) -> bool {
    let secs = now.as_second();
    jiff::Timestamp::from_second(secs - secs.rem_euclid(60))
        .map(|minute| minute.to_zoned(jiff::tz::TimeZone::UTC))
        .is_ok_and(|m| window.is_time_matching(&m).unwrap_or(false))
}

impl Scaled {
    fn report(&self, desired: usize, value: Option<f64>) -> PoolScaling {
        PoolScaling {
            pool: self.pool.clone(),
            metric: metric_name(self.settings.scale_metric),
            threshold: self.settings.scale_threshold,
            min_workers: self.settings.min_workers,
            max_workers: self.settings.max_workers,
            workers: self.workers,
            desired,
            last_value: value,
            changes: self.changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_is_open_for_its_whole_minutes() {
        let w: croner::Cron = "* 6-21 * * *".parse().unwrap();
        assert!(window_open(&w, at("2026-11-30T06:00:00Z")));
        assert!(
            window_open(&w, at("2026-11-30T06:00:42.5Z")),
            "not only at second 0"
        );
        assert!(window_open(&w, at("2026-11-30T21:59:59Z")));
        assert!(!window_open(&w, at("2026-11-30T22:00:00Z")));
        assert!(!window_open(&w, at("2026-11-30T05:59:59Z")));
        let never: croner::Cron = "0 0 31 2 *".parse().unwrap();
        assert!(!window_open(&never, at("2026-02-28T00:00:00Z")));
    }
}
