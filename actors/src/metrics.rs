//! Measurements of handler calls per (stream, group, event type): what the design's
//! `EventPerformanceMetrics` is computed from, wherever it is shown (JSON,
//! Prometheus).
//!
//! Each router owns one [`RouteMetrics`] and records into it where it already times
//! a handler call (when the call's outcome comes back). Per event type it keeps:
//! - totals since the process started: attempts handled and failed, dead letters,
//!   and processing time and publish-to-handled latency in fixed buckets (the
//!   cumulative histograms Prometheus wants);
//! - a sliding window of the last [`SLOTS`] minutes: a ring of one-minute slots, each
//!   with its counts and two HDR histograms (processing time, latency; microseconds,
//!   two significant figures), from which rates and p50/p95/p99 are read.
//!
//! Invariants:
//! - recording takes one short lock per route and allocates only the first time a
//!   type is seen (its slots and histograms are made then and reset in place);
//! - at most [`MAX_TYPES`] types are kept per route; past that, and for dead letters
//!   whose type this route does not know, figures go under [`OTHER_TYPE`], so a
//!   stream of garbage types cannot grow memory or the number of label values;
//! - a slot older than the window is never read: it is reset before reuse and
//!   skipped by snapshots;
//! - values above an hour are recorded as an hour (saturating), never dropped.
//!
//! ```
//! use std::time::Duration;
//! use strategist_actors::metrics::{Attempt, RouteMetrics};
//! let m = RouteMetrics::default();
//! m.record("user.login", Attempt::Handled, Duration::from_millis(3), None);
//! m.record("user.login", Attempt::Failed, Duration::from_millis(5), None);
//! let snap = m.snapshot();
//! let t = &snap[0];
//! assert_eq!((t.event_type.as_str(), t.handled, t.failed), ("user.login", 1, 1));
//! assert_eq!(t.window.handled + t.window.failed, 2);
//! assert!(t.window.processing.p99_ms >= 4.9);
//! assert_eq!(t.window.error_rate(), 0.5);
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Length of one slot of the sliding window.
pub const SLOT: Duration = Duration::from_secs(60);
/// Slots in the window: the window is the last five minutes.
pub const SLOTS: usize = 5;
/// Most event types kept per route.
pub const MAX_TYPES: usize = 256;
/// The type figures go under when the real one is not kept (see the invariants).
pub const OTHER_TYPE: &str = "other";
/// Upper bounds (seconds) of the cumulative buckets; a last bucket holds the rest.
pub const BUCKETS_S: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Largest value a histogram holds, in microseconds (an hour).
const MAX_US: u64 = 3_600_000_000;
/// Significant figures of the HDR histograms: 1% precision, about 25 KiB each.
const SIGFIG: u8 = 2;

/// How one handler call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The handler succeeded (the entry is acked).
    Handled,
    /// The handler failed, timed out or panicked (retried or dead-lettered).
    Failed,
}

/// The measurements of one router (one stream, one consumer group).
#[derive(Debug)]
pub struct RouteMetrics {
    /// When measuring began: slot numbers count minutes from here.
    epoch: Instant,
    types: Mutex<HashMap<String, TypeMetrics>>,
    /// False: nothing is recorded (to measure what measuring costs).
    enabled: bool,
}

impl Default for RouteMetrics {
    fn default() -> Self {
        RouteMetrics {
            epoch: Instant::now(),
            types: Mutex::new(HashMap::new()),
            enabled: true,
        }
    }
}

impl RouteMetrics {
    /// Measurements that record nothing: what [`crate::EngineConfig::metrics`]
    /// `false` gives every router, so `bench` can measure what measuring costs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use strategist_actors::metrics::{Attempt, RouteMetrics};
    /// let m = RouteMetrics::off();
    /// m.record("t", Attempt::Handled, Duration::from_millis(1), None);
    /// assert!(m.snapshot().is_empty());
    /// ```
    pub fn off() -> Self {
        RouteMetrics {
            enabled: false,
            ..RouteMetrics::default()
        }
    }
}

#[derive(Debug)]
struct TypeMetrics {
    handled: u64,
    failed: u64,
    dead_lettered: u64,
    processing: Buckets,
    latency: Buckets,
    /// Slot `m % SLOTS` holds minute `m` (counted from `epoch`).
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    minute: u64,
    handled: u64,
    failed: u64,
    dead_lettered: u64,
    processing: Histogram<u64>,
    latency: Histogram<u64>,
}

/// Fixed-bucket counts since the process started.
#[derive(Debug, Default)]
struct Buckets {
    /// Per bucket of [`BUCKETS_S`], not cumulative; the last one is above them all.
    counts: [u64; BUCKETS_S.len() + 1],
    sum_us: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("constant, valid histogram bounds")
}

impl Buckets {
    fn record(&mut self, us: u64) {
        let s = us as f64 / 1e6;
        let i = BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS_S.len());
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    fn snapshot(&self) -> BucketCounts {
        BucketCounts {
            counts: self.counts.to_vec(),
            count: self.counts.iter().sum(),
            sum_seconds: self.sum_us as f64 / 1e6,
        }
    }
}

impl TypeMetrics {
    fn new() -> Self {
        TypeMetrics {
            handled: 0,
            failed: 0,
            dead_lettered: 0,
            processing: Buckets::default(),
            latency: Buckets::default(),
            slots: (0..SLOTS)
                .map(|_| Slot {
                    minute: 0,
                    handled: 0,
                    failed: 0,
                    dead_lettered: 0,
                    processing: histogram(),
                    latency: histogram(),
                })
                .collect(),
        }
    }

    /// The slot of `minute`, emptied first if it held an older minute.
    fn slot(&mut self, minute: u64) -> &mut Slot {
        let s = &mut self.slots[(minute % SLOTS as u64) as usize];
        if s.minute != minute {
            s.minute = minute;
            s.handled = 0;
            s.failed = 0;
            s.dead_lettered = 0;
            s.processing.reset();
            s.latency.reset();
        }
        s
    }
}

impl RouteMetrics {
    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / SLOT.as_secs()
    }

    fn with_type<R>(&self, event_type: &str, f: impl FnOnce(&mut TypeMetrics) -> R) -> R {
        let mut types = self.types.lock().unwrap_or_else(PoisonError::into_inner);
        if !types.contains_key(event_type) {
            let key = if types.len() < MAX_TYPES {
                event_type
            } else {
                OTHER_TYPE
            };
            if !types.contains_key(key) {
                types.insert(key.to_owned(), TypeMetrics::new());
            }
            if key != event_type {
                return f(types.get_mut(OTHER_TYPE).expect("inserted above"));
            }
        }
        f(types.get_mut(event_type).expect("inserted above"))
    }

    /// True when figures of this type are kept under its own name.
    pub fn tracks(&self, event_type: &str) -> bool {
        self.types
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(event_type)
    }

    /// Records one handler call: how it ended, how long it ran, and (for a success)
    /// the latency from `published_ms` (ms since the epoch) to now.
    pub fn record(
        &self,
        event_type: &str,
        attempt: Attempt,
        took: Duration,
        published_ms: Option<i64>,
    ) {
        if !self.enabled {
            return;
        }
        let latency_us = published_ms
            .filter(|_| attempt == Attempt::Handled)
            .map(|p| (now_ms().saturating_sub(p).max(0) as u64).saturating_mul(1000));
        self.record_at(Instant::now(), event_type, attempt, took, latency_us);
    }

    fn record_at(
        &self,
        now: Instant,
        event_type: &str,
        attempt: Attempt,
        took: Duration,
        latency_us: Option<u64>,
    ) {
        let minute = self.minute(now);
        let took_us = (took.as_micros() as u64).clamp(1, MAX_US);
        self.with_type(event_type, |t| {
            match attempt {
                Attempt::Handled => t.handled += 1,
                Attempt::Failed => t.failed += 1,
            }
            t.processing.record(took_us);
            if let Some(l) = latency_us {
                t.latency.record(l);
            }
            let s = t.slot(minute);
            match attempt {
                Attempt::Handled => s.handled += 1,
                Attempt::Failed => s.failed += 1,
            }
            s.processing.saturating_record(took_us);
            if let Some(l) = latency_us {
                s.latency.saturating_record(l.clamp(1, MAX_US));
            }
        });
    }

    /// Records one entry moved to the dead letters.
    pub fn record_dead_letter(&self, event_type: &str) {
        if !self.enabled {
            return;
        }
        self.record_dead_letter_at(Instant::now(), event_type);
    }

    fn record_dead_letter_at(&self, now: Instant, event_type: &str) {
        let minute = self.minute(now);
        self.with_type(event_type, |t| {
            t.dead_lettered += 1;
            t.slot(minute).dead_lettered += 1;
        });
    }

    /// Every type's figures now, sorted by type.
    pub fn snapshot(&self) -> Vec<TypeSnapshot> {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> Vec<TypeSnapshot> {
        let minute = self.minute(now);
        let elapsed = now.saturating_duration_since(self.epoch).as_secs_f64();
        // The window: SLOTS-1 whole minutes and the part of the current one gone by
        // (less while the process is younger than that).
        let span = elapsed.min((SLOTS as f64 - 1.0) * SLOT.as_secs_f64() + elapsed % 60.0);
        let types = self.types.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<TypeSnapshot> = types
            .iter()
            .map(|(name, t)| {
                let mut w = WindowSnapshot {
                    seconds: span,
                    ..WindowSnapshot::default()
                };
                let mut processing = histogram();
                let mut latency = histogram();
                for s in t
                    .slots
                    .iter()
                    .filter(|s| s.minute <= minute && s.minute + SLOTS as u64 > minute)
                {
                    w.handled += s.handled;
                    w.failed += s.failed;
                    w.dead_lettered += s.dead_lettered;
                    // Same bounds everywhere: adding cannot fail.
                    let _ = processing.add(&s.processing);
                    let _ = latency.add(&s.latency);
                }
                w.processing = Quantiles::of(&processing);
                w.latency = Quantiles::of(&latency);
                TypeSnapshot {
                    event_type: name.clone(),
                    handled: t.handled,
                    failed: t.failed,
                    dead_lettered: t.dead_lettered,
                    processing: t.processing.snapshot(),
                    latency: t.latency.snapshot(),
                    window: w,
                }
            })
            .collect();
        out.sort_by(|a, b| a.event_type.cmp(&b.event_type));
        out
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// When an entry was published, in ms since the epoch: the time in its Redis entry
/// id (Redis's own clock, the same for every producer, and the time it entered this
/// stream, also for a redelivered dead letter); the envelope's `timestamp` when the
/// id was given explicitly and carries no time (such as `1-0`).
pub fn published_ms(entry_id: &str, envelope_ms: i64) -> i64 {
    let from_id = entry_id
        .split('-')
        .next()
        .and_then(|ms| ms.parse::<i64>().ok());
    // Before 2001: not a time.
    match from_id {
        Some(ms) if ms >= 1_000_000_000_000 => ms,
        _ => envelope_ms,
    }
}

/// One event type's figures on one route.
#[derive(Debug, Clone, Serialize)]
pub struct TypeSnapshot {
    /// The event type (or [`OTHER_TYPE`]).
    pub event_type: String,
    /// Handler calls that succeeded since the process started.
    pub handled: u64,
    /// Handler calls that failed since the process started (each retry counts).
    pub failed: u64,
    /// Entries moved to the dead letters since the process started.
    pub dead_lettered: u64,
    /// Processing time of every call since the process started.
    pub processing: BucketCounts,
    /// Publish-to-handled latency of every success since the process started.
    pub latency: BucketCounts,
    /// The last [`SLOTS`] minutes.
    pub window: WindowSnapshot,
}

/// Counts per bucket of [`BUCKETS_S`] (not cumulative; the last is above them all).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BucketCounts {
    /// One per bound of [`BUCKETS_S`], then one for the rest.
    pub counts: Vec<u64>,
    /// Values recorded.
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
}

/// Figures of the sliding window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowSnapshot {
    /// How long the window covers, in seconds (at most [`SLOTS`] minutes).
    pub seconds: f64,
    /// Successful calls in it.
    pub handled: u64,
    /// Failed calls in it.
    pub failed: u64,
    /// Dead letters in it.
    pub dead_lettered: u64,
    /// Processing time of its calls.
    pub processing: Quantiles,
    /// Publish-to-handled latency of its successes.
    pub latency: Quantiles,
}

impl WindowSnapshot {
    /// Minutes the rates are computed over: the window's span, at least a minute
    /// (so a burst in the first second does not read as sixty times its size).
    pub fn minutes(&self) -> f64 {
        (self.seconds / 60.0).max(1.0)
    }

    /// Calls (successful or not) per minute.
    pub fn throughput_per_minute(&self) -> f64 {
        (self.handled + self.failed) as f64 / self.minutes()
    }

    /// Dead letters per minute.
    pub fn dead_letters_per_minute(&self) -> f64 {
        self.dead_lettered as f64 / self.minutes()
    }

    /// Share of calls that succeeded (1 when there were none).
    pub fn success_rate(&self) -> f64 {
        1.0 - self.error_rate()
    }

    /// Share of calls that failed (0 when there were none).
    pub fn error_rate(&self) -> f64 {
        let all = self.handled + self.failed;
        if all == 0 {
            0.0
        } else {
            self.failed as f64 / all as f64
        }
    }
}

/// Mean and quantiles of a histogram, in milliseconds (0 when it is empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Values recorded.
    pub count: u64,
    /// Their mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Quantiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Quantiles {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_recorded_values() {
        let m = RouteMetrics::default();
        for ms in 1..=100 {
            m.record(
                "a",
                Attempt::Handled,
                Duration::from_millis(ms),
                Some(now_ms() - 1000),
            );
        }
        let snap = m.snapshot();
        let s = &snap[0];
        assert_eq!(s.handled, 100);
        let q = s.window.processing;
        assert_eq!(q.count, 100);
        assert!((49.0..=51.0).contains(&q.p50_ms), "{q:?}");
        assert!((94.0..=96.0).contains(&q.p95_ms), "{q:?}");
        assert!((98.0..=101.0).contains(&q.p99_ms), "{q:?}");
        assert!((998.0..=1200.0).contains(&s.window.latency.p50_ms), "{s:?}");
        assert_eq!(s.processing.count, 100);
        assert!((s.processing.sum_seconds - 5.05).abs() < 1e-9);
        // 1..=100 ms: 1 in (0.5,1], 1 in (1,2.5], ... the buckets add up.
        assert_eq!(s.processing.counts.iter().sum::<u64>(), 100);
        assert_eq!(s.processing.counts[1], 1);
        assert_eq!(
            s.processing.counts[7], 50,
            "51..=100 ms are in (50, 100] ms"
        );
    }

    #[test]
    fn old_minutes_leave_the_window_but_not_the_totals() {
        let m = RouteMetrics::default();
        let t0 = m.epoch;
        let ms = Duration::from_millis(1);
        m.record_at(t0, "a", Attempt::Failed, ms, None);
        m.record_dead_letter_at(t0, "a");
        m.record_at(t0 + SLOT * 2, "a", Attempt::Handled, ms, None);
        let snap = m.snapshot_at(t0 + SLOT * 4 + Duration::from_secs(30));
        let s = &snap[0];
        assert_eq!((s.window.handled, s.window.failed), (1, 1));
        assert_eq!(s.window.dead_lettered, 1);
        assert_eq!(s.window.seconds, 270.0);
        // Minute 0 is out of the window (minutes 1..=5), minute 2 still in; the
        // slot of minute 0 is reused by minute 5.
        let later = t0 + SLOT * 5 + Duration::from_secs(1);
        m.record_at(later, "a", Attempt::Handled, ms, None);
        let snap = m.snapshot_at(later);
        let s = &snap[0];
        assert_eq!((s.window.handled, s.window.failed), (2, 0));
        assert_eq!(s.window.dead_lettered, 0);
        assert_eq!((s.handled, s.failed, s.dead_lettered), (2, 1, 1));
        assert_eq!(s.window.seconds, 241.0);
        let snap = m.snapshot_at(t0 + SLOT * 20);
        let s = &snap[0];
        assert_eq!((s.window.handled, s.window.processing.count), (0, 0));
    }

    #[test]
    fn types_past_the_cap_go_under_other() {
        let m = RouteMetrics::default();
        for i in 0..MAX_TYPES + 10 {
            m.record(&format!("t{i}"), Attempt::Handled, Duration::ZERO, None);
        }
        let s = m.snapshot();
        assert_eq!(s.len(), MAX_TYPES + 1);
        let other = s.iter().find(|t| t.event_type == OTHER_TYPE).unwrap();
        assert_eq!(other.handled, 10);
    }

    #[test]
    fn rates_and_publish_times() {
        let w = WindowSnapshot {
            seconds: 120.0,
            handled: 30,
            failed: 10,
            dead_lettered: 4,
            ..WindowSnapshot::default()
        };
        assert_eq!(w.throughput_per_minute(), 20.0);
        assert_eq!(w.dead_letters_per_minute(), 2.0);
        assert_eq!((w.success_rate(), w.error_rate()), (0.75, 0.25));
        assert_eq!(WindowSnapshot::default().success_rate(), 1.0);
        assert_eq!(published_ms("1764417600123-0", 5), 1_764_417_600_123);
        assert_eq!(published_ms("1-0", 5), 5);
    }
}
