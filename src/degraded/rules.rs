//! The pure half of the degraded-performance watch: which figures are over which
//! threshold, and when a figure's state changes. No Redis, no clock: unit-tested.
//!
//! Invariants: a figure crosses when it is above its threshold and recovers only at
//! or below `threshold × recovery_ratio` (hysteresis: a figure hovering at the
//! threshold does not flap); a threshold of 0 is off; handler figures measured on
//! fewer than `min_calls` calls say nothing (neither cross nor recover).

use std::collections::HashMap;

use strategist_actors::metrics::{BUCKETS_S, TypeSnapshot};

use crate::config::ThresholdSettings;
use crate::metrics::QueueFigures;

/// What a figure is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole system (read from Redis): every process sees the same figure.
    System,
    /// This process's own handler calls.
    Process,
}

/// One figure measured now, against its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// `metric.stream.group[.type]`, as in the event's `metric_name`.
    pub key: String,
    /// The metric alone (`latency_p95_ms`, ...).
    pub metric: &'static str,
    /// The consumer group it is about.
    pub group: String,
    /// Where it was measured.
    pub scope: Scope,
    /// The figure.
    pub value: f64,
    /// Its threshold.
    pub threshold: f64,
    /// True when the figure has no evidence either way (too few calls).
    pub silent: bool,
}

/// A state change to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The reading that changed state.
    pub reading: Reading,
    /// True: back to normal; false: crossed the threshold.
    pub recovered: bool,
}

/// The cumulative counters of one (stream, group, type) at one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Successful calls since the process started.
    pub handled: u64,
    /// Failed calls since the process started.
    pub failed: u64,
    /// Latency (publish to handled) per bucket of [`BUCKETS_S`], not cumulative.
    pub latency: Vec<u64>,
}

impl Counters {
    /// The counters of a type snapshot.
    pub fn of(t: &TypeSnapshot) -> Self {
        Counters {
            handled: t.handled,
            failed: t.failed,
            latency: t.latency.counts.clone(),
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            handled: self.handled.saturating_sub(earlier.handled),
            failed: self.failed.saturating_sub(earlier.failed),
            latency: self
                .latency
                .iter()
                .enumerate()
                .map(|(i, c)| c.saturating_sub(earlier.latency.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }
}

/// The `q` quantile (0..1) in ms of bucket counts over [`BUCKETS_S`], linearly
/// interpolated inside its bucket; the bucket above the last bound counts as that
/// bound. None without counts.
pub fn quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0);
    let mut seen = 0u64;
    for (i, c) in counts.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        if (seen + c) as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { BUCKETS_S[i - 1] };
            let Some(upper) = BUCKETS_S.get(i) else {
                return Some(BUCKETS_S[BUCKETS_S.len() - 1] * 1000.0);
            };
            let within = (rank - seen as f64) / *c as f64;
            return Some((lower + (upper - lower) * within) * 1000.0);
        }
        seen += c;
    }
    None
}

/// The handler readings of one (stream, group, type) over a window.
pub fn handler_readings(
    stream: &str,
    group: &str,
    event_type: &str,
    window: &Counters,
    t: &ThresholdSettings,
) -> Vec<Reading> {
    let calls = window.handled + window.failed;
    let silent = calls < t.min_calls.max(1);
    let mut out = Vec::new();
    let subject = format!("{stream}.{group}.{event_type}");
    if t.latency_p95_ms > 0.0 {
        let p95 = quantile_ms(&window.latency, 0.95);
        out.push(Reading {
            key: format!("latency_p95_ms.{subject}"),
            metric: "latency_p95_ms",
            group: group.to_string(),
            scope: Scope::Process,
            value: p95.unwrap_or(0.0),
            threshold: t.latency_p95_ms,
            silent: silent || p95.is_none(),
        });
    }
    if t.error_rate > 0.0 {
        out.push(Reading {
            key: format!("error_rate.{subject}"),
            metric: "error_rate",
            group: group.to_string(),
            scope: Scope::Process,
            value: if calls == 0 {
                0.0
            } else {
                window.failed as f64 / calls as f64
            },
            threshold: t.error_rate,
            silent,
        });
    }
    out
}

/// The queue readings of every group, from Redis's figures.
pub fn queue_readings(q: &QueueFigures, t: &ThresholdSettings) -> Vec<Reading> {
    let mut out = Vec::new();
    for s in &q.streams {
        for g in &s.groups {
            let subject = format!("{}.{}", s.stream, g.group);
            let mut push = |metric: &'static str, value: f64, threshold: f64| {
                if threshold > 0.0 {
                    out.push(Reading {
                        key: format!("{metric}.{subject}"),
                        metric,
                        group: g.group.clone(),
                        scope: Scope::System,
                        value,
                        threshold,
                        silent: false,
                    });
                }
            };
            push("queue_depth", g.queue_depth() as f64, t.queue_depth as f64);
            push(
                "oldest_pending_age_ms",
                g.oldest_pending_age_ms.unwrap_or(0) as f64,
                t.oldest_pending_age_ms as f64,
            );
            push(
                "dead_letters_per_minute",
                g.dead_letters_per_minute(),
                t.dead_letters_per_minute,
            );
        }
    }
    out
}

/// Where a reading stands: `Some(true)` over, `Some(false)` back to normal, None
/// in between (keep the state it has) or silent.
pub fn judge(r: &Reading, recovery_ratio: f64) -> Option<bool> {
    if r.silent {
        None
    } else if r.value > r.threshold {
        Some(true)
    } else if r.value <= r.threshold * recovery_ratio {
        Some(false)
    } else {
        None
    }
}

/// The states of this process's own figures (true: over its threshold).
#[derive(Debug, Default)]
pub struct LocalStates {
    over: HashMap<String, bool>,
}

impl LocalStates {
    /// The change `r` makes, if any, remembering the new state.
    pub fn apply(&mut self, r: &Reading, recovery_ratio: f64) -> Option<Change> {
        let now = judge(r, recovery_ratio)?;
        let was = self.over.get(&r.key).copied().unwrap_or(false);
        if now == was {
            return None;
        }
        self.over.insert(r.key.clone(), now);
        Some(Change {
            reading: r.clone(),
            recovered: !now,
        })
    }
}

/// What a person can do about a crossing.
pub fn suggested_actions(r: &Reading, recovered: bool) -> Vec<String> {
    if recovered {
        return vec![format!(
            "{} is back at {:.2} (threshold {:.2}); nothing to do",
            r.key, r.value, r.threshold
        )];
    }
    let group = &r.group;
    match r.metric {
        "latency_p95_ms" => vec![
            format!("handlers of `{group}` are slow: check what they wait on (provider, database)"),
            format!("add workers to `{group}` or processes running it"),
        ],
        "error_rate" => vec![
            format!("handlers of `{group}` fail: read their logs and the dead letters"),
            "check the services they call (Redis, database, AI provider)".into(),
        ],
        "queue_depth" => vec![
            format!("`{group}` has more work than it finishes: add workers or processes"),
            format!("check that a process runs the `{group}` pool"),
        ],
        "oldest_pending_age_ms" => vec![
            format!("an entry of `{group}` has been running a long time: a handler may hang"),
            "look for stuck handlers; claims hand it to another worker after claim_idle_ms".into(),
        ],
        _ => vec![
            format!("`{group}` dead-letters events: read them with GET /api/v1/dlq"),
            "fix the cause, then reprocess them".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThresholdSettings {
        ThresholdSettings {
            interval_ms: 1000,
            window_ms: 10_000,
            min_calls: 5,
            recovery_ratio: 0.8,
            latency_p95_ms: 100.0,
            error_rate: 0.1,
            queue_depth: 50,
            oldest_pending_age_ms: 60_000,
            dead_letters_per_minute: 1.0,
        }
    }

    fn counts_at(bucket: usize, n: u64) -> Vec<u64> {
        let mut v = vec![0; BUCKETS_S.len() + 1];
        v[bucket] = n;
        v
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        // 100 calls between 100 and 250 ms: p95 at 95% of the way.
        let v = counts_at(8, 100);
        let p = quantile_ms(&v, 0.95).unwrap();
        assert!((p - 242.5).abs() < 0.01, "{p}");
        assert_eq!(quantile_ms(&[0; 17], 0.95), None);
        // Beyond the last bound: the bound.
        assert_eq!(quantile_ms(&counts_at(16, 3), 0.95), Some(60_000.0));
    }

    #[test]
    fn a_crossing_and_a_recovery_are_one_change_each() {
        let t = settings();
        let mut states = LocalStates::default();
        let slow = Counters {
            handled: 10,
            failed: 0,
            latency: counts_at(9, 10), // 250..500 ms
        };
        let fast = Counters {
            handled: 10,
            failed: 0,
            latency: counts_at(2, 10), // 1..2.5 ms
        };
        let read = |c: &Counters| handler_readings("s", "g", "t", c, &t).remove(0);
        let first = states.apply(&read(&slow), t.recovery_ratio).unwrap();
        assert!(!first.recovered);
        assert_eq!(first.reading.key, "latency_p95_ms.s.g.t");
        assert_eq!(states.apply(&read(&slow), t.recovery_ratio), None);
        let back = states.apply(&read(&fast), t.recovery_ratio).unwrap();
        assert!(back.recovered);
        assert_eq!(states.apply(&read(&fast), t.recovery_ratio), None);
    }

    #[test]
    fn too_few_calls_say_nothing() {
        let t = settings();
        let mut states = LocalStates::default();
        let few = Counters {
            handled: 0,
            failed: 2,
            latency: counts_at(9, 0),
        };
        for r in handler_readings("s", "g", "t", &few, &t) {
            assert!(r.silent);
            assert_eq!(states.apply(&r, t.recovery_ratio), None);
        }
    }

    #[test]
    fn between_recovery_and_threshold_the_state_holds() {
        let r = |value| Reading {
            key: "k".into(),
            metric: "queue_depth",
            group: "g".into(),
            scope: Scope::System,
            value,
            threshold: 50.0,
            silent: false,
        };
        assert_eq!(judge(&r(51.0), 0.8), Some(true));
        assert_eq!(judge(&r(45.0), 0.8), None);
        assert_eq!(judge(&r(40.0), 0.8), Some(false));
        let mut s = LocalStates::default();
        assert!(s.apply(&r(51.0), 0.8).is_some());
        assert!(s.apply(&r(45.0), 0.8).is_none());
        assert!(s.apply(&r(40.0), 0.8).unwrap().recovered);
    }

    #[test]
    fn error_rate_is_failed_over_calls() {
        let t = settings();
        let c = Counters {
            handled: 8,
            failed: 2,
            latency: vec![0; 17],
        };
        let rs = handler_readings("s", "g", "t", &c, &t);
        let e = rs.iter().find(|r| r.metric == "error_rate").unwrap();
        assert!((e.value - 0.2).abs() < 1e-9);
        assert_eq!(judge(e, t.recovery_ratio), Some(true));
    }
}
