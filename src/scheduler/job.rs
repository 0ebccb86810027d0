//! One kind of timed work the scheduler runs (collection, trend analysis,
//! briefings, maintenance). The scheduler decides when and claims each run for one
//! process; a job only does the work of one run.
//!
//! Invariant: a run is identified by (job name, `scheduled_for`); the scheduler
//! records it before and after, so a job may rely on running once per slot.

use futures_util::future::BoxFuture;

/// What a run did, recorded with it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct JobOutcome {
    /// A one-line summary for the run record and the logs (counts, never personal data).
    pub summary: String,
    /// Named counts: rows deleted, feeds polled, briefings scheduled, ...
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// Why a run failed (recorded; the next slot runs as usual).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobError(pub String);

/// One kind of timed work.
pub trait Job: Send + Sync {
    /// Its name in `[scheduler.jobs.<name>]` and in the run records.
    fn name(&self) -> &'static str;
    /// One run for the slot `scheduled_for` (UTC).
    fn run<'a>(
        &'a self,
        scheduled_for: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<JobOutcome, JobError>>;
}
