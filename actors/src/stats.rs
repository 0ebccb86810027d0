//! Counters of one router (and one gauge, `in_flight`), shared with whoever reports them (HTTP, Prometheus,
//! benchmarks). Plain atomics: reading them never slows the router down.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one (stream, group) router has done since the process started.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Entries whose handler succeeded.
    pub handled: AtomicU64,
    /// Handler attempts that failed (each retry counts).
    pub failed: AtomicU64,
    /// Retries scheduled.
    pub retried: AtomicU64,
    /// Entries moved to the dead letters.
    pub dead_lettered: AtomicU64,
    /// Entries acked (handled, skipped or gone).
    pub acked: AtomicU64,
    /// Entries of types this group does not handle, acked without running.
    pub skipped: AtomicU64,
    /// Entries taken over from other consumers or from the retry schedule.
    pub claimed: AtomicU64,
    /// Pending entries found trimmed from the stream, acked and reported.
    pub gone: AtomicU64,
    /// Sum of handler run times in microseconds (with `handled`, the mean).
    pub busy_us: AtomicU64,
    /// Entries another consumer claimed while this one held them (their handlers
    /// were cancelled).
    pub leases_lost: AtomicU64,
    /// Entries running on a worker now (a gauge, not a counter).
    pub in_flight: AtomicU64,
    /// Workers behind this router now (a gauge).
    pub workers: AtomicU64,
    /// Restarts of its workers (after a panic) and of the router itself.
    pub restarts: AtomicU64,
}

/// A copy of [`RouteStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// See [`RouteStats::handled`].
    pub handled: u64,
    /// See [`RouteStats::failed`].
    pub failed: u64,
    /// See [`RouteStats::retried`].
    pub retried: u64,
    /// See [`RouteStats::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`RouteStats::acked`].
    pub acked: u64,
    /// See [`RouteStats::skipped`].
    pub skipped: u64,
    /// See [`RouteStats::claimed`].
    pub claimed: u64,
    /// See [`RouteStats::gone`].
    pub gone: u64,
    /// See [`RouteStats::busy_us`].
    pub busy_us: u64,
    /// See [`RouteStats::leases_lost`].
    pub leases_lost: u64,
    /// See [`RouteStats::in_flight`].
    pub in_flight: u64,
    /// See [`RouteStats::workers`].
    pub workers: u64,
    /// See [`RouteStats::restarts`].
    pub restarts: u64,
}

impl StatsSnapshot {
    /// Both snapshots added up (the routers of a stream's partitions as one).
    pub fn plus(&self, o: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            handled: self.handled + o.handled,
            failed: self.failed + o.failed,
            retried: self.retried + o.retried,
            dead_lettered: self.dead_lettered + o.dead_lettered,
            acked: self.acked + o.acked,
            skipped: self.skipped + o.skipped,
            claimed: self.claimed + o.claimed,
            gone: self.gone + o.gone,
            busy_us: self.busy_us + o.busy_us,
            leases_lost: self.leases_lost + o.leases_lost,
            in_flight: self.in_flight + o.in_flight,
            workers: self.workers + o.workers,
            restarts: self.restarts + o.restarts,
        }
    }
}

impl RouteStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            handled: r(&self.handled),
            failed: r(&self.failed),
            retried: r(&self.retried),
            dead_lettered: r(&self.dead_lettered),
            acked: r(&self.acked),
            skipped: r(&self.skipped),
            claimed: r(&self.claimed),
            gone: r(&self.gone),
            busy_us: r(&self.busy_us),
            leases_lost: r(&self.leases_lost),
            in_flight: r(&self.in_flight),
            workers: r(&self.workers),
            restarts: r(&self.restarts),
        }
    }
}
