//! One scheduler per `serve` process for all timed work: collection, trend
//! analysis, briefings and maintenance are [`Job`]s with a cron expression (UTC) in
//! `[scheduler.jobs.<name>]`.
//!
//! Every process with a scheduler ticks; at each tick, for each enabled job, the slot
//! due now is the latest cron time at or before now. A slot older than the grace
//! window is skipped (after a long downtime the next slot runs as usual); a newer one
//! is claimed by inserting its row in `scheduled_runs`, whose primary key is (job,
//! slot): the one process whose insert succeeds runs it, the others see the row and
//! do nothing. So a slot runs at most once across every process sharing the
//! database, and a slot missed while everything was down runs once when a scheduler
//! comes back within the grace window. Only the latest missed slot runs, never a
//! backlog.
//!
//! A process never overlaps two runs of the same job: while one is under way it
//! claims no further slot of that job (another process may).
//!
//! A run is recorded before (`running`) and after (`ok` or `failed`, with its
//! summary and counts). A process that dies mid-run leaves `running`: the slot is
//! not run again (at most once), the next slot runs as usual.

pub mod calendar;
pub mod job;
pub mod runs;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use job::{Job, JobError, JobOutcome};

use crate::database::Db;

/// `[scheduler]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Whether `serve` runs a scheduler (`--no-scheduler` turns it off too).
    pub enabled: bool,
    /// How often due slots are looked for.
    pub tick_ms: u64,
    /// A slot missed by at most this long (downtime) still runs, once.
    pub grace_ms: u64,
    /// The jobs by name.
    pub jobs: BTreeMap<String, JobSettings>,
}

/// `[scheduler.jobs.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// Cron expression in UTC (5 fields, or 6 with seconds first).
    pub cron: String,
    /// Whether it runs.
    pub enabled: bool,
}

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A job has no `[scheduler.jobs.<name>]`.
    #[error("[scheduler.jobs.{0}] is missing from the configuration")]
    Missing(String),
    /// A configured job that no code registers (a typo would otherwise never run).
    #[error("[scheduler.jobs.{0}] names no job; jobs: {1}")]
    Unknown(String, String),
    /// A bad cron expression.
    #[error("[scheduler.jobs.{0}]: {1}")]
    Cron(String, calendar::CalendarError),
}

struct Scheduled {
    job: Arc<dyn Job>,
    cron: croner::Cron,
    /// A run of it is under way in this process: its next slot is left to another
    /// process (or to this one once the run ends, if still due), never overlapped.
    busy: Arc<AtomicBool>,
}

/// The scheduler of one process.
pub struct Scheduler {
    db: Db,
    jobs: Vec<Scheduled>,
    tick: Duration,
    grace: chrono::Duration,
    owner: String,
}

impl Scheduler {
    /// The enabled `jobs` with their configured schedules. Every job needs a
    /// configuration entry and every entry a job.
    pub fn new(
        db: Db,
        settings: &SchedulerSettings,
        jobs: Vec<Arc<dyn Job>>,
        owner: String,
    ) -> Result<Scheduler, SchedulerError> {
        let names: Vec<&str> = jobs.iter().map(|j| j.name()).collect();
        if let Some(unknown) = settings.jobs.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(SchedulerError::Unknown(unknown.clone(), names.join(", ")));
        }
        let mut scheduled = Vec::new();
        for job in jobs {
            let name = job.name();
            let conf = settings
                .jobs
                .get(name)
                .ok_or_else(|| SchedulerError::Missing(name.to_owned()))?;
            let cron = calendar::parse(&conf.cron)
                .map_err(|e| SchedulerError::Cron(name.to_owned(), e))?;
            if conf.enabled {
                scheduled.push(Scheduled {
                    job,
                    cron,
                    busy: Arc::new(AtomicBool::new(false)),
                });
            }
        }
        Ok(Scheduler {
            db,
            jobs: scheduled,
            tick: Duration::from_millis(settings.tick_ms.max(10)),
            grace: chrono::Duration::milliseconds(
                i64::try_from(settings.grace_ms).unwrap_or(i64::MAX),
            ),
            owner,
        })
    }

    /// The names of the jobs it runs.
    pub fn job_names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|s| s.job.name()).collect()
    }

    /// Runs the tick loop on the current runtime until the process ends.
    pub fn spawn(self) {
        actix::spawn(async move { self.run().await });
    }

    async fn run(self) {
        let me = Arc::new(self);
        // The last slot this process tried per job: one insert per slot, not per tick.
        let mut tried: HashMap<&'static str, i64> = HashMap::new();
        let mut tick = tokio::time::interval(me.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(store) = me.db.try_get() else {
                continue;
            };
            let now = Utc::now();
            for (i, s) in me.jobs.iter().enumerate() {
                let name = s.job.name();
                let Ok(slot) =
                    calendar::latest_at_or_before(&s.cron, now, &jiff::tz::TimeZone::UTC)
                else {
                    continue;
                };
                let slot = calendar::utc(&slot);
                let slot_ms = slot.timestamp_millis();
                if tried.get(name) == Some(&slot_ms)
                    || now - slot > me.grace
                    || s.busy.load(Ordering::Acquire)
                {
                    continue;
                }
                match store.claim_run(name, slot_ms, &me.owner).await {
                    Ok(true) => {
                        tried.insert(name, slot_ms);
                        s.busy.store(true, Ordering::Release);
                        let me = me.clone();
                        actix::spawn(async move { me.run_one(i, slot).await });
                    }
                    Ok(false) => {
                        tried.insert(name, slot_ms);
                    }
                    // Tried again at the next tick.
                    Err(e) => tracing::warn!(job = name, error = %e, "cannot claim a run"),
                }
            }
        }
    }

    async fn run_one(&self, i: usize, slot: DateTime<Utc>) {
        let s = &self.jobs[i];
        // Cleared however the run ends, a panic included.
        let _busy = BusyGuard(s.busy.clone());
        let name = s.job.name();
        let started = std::time::Instant::now();
        let result = s.job.run(slot).await;
        let ms = started.elapsed().as_millis() as u64;
        let scheduled_for_ms = slot.timestamp_millis();
        match &result {
            Ok(o) => {
                tracing::info!(job = name, scheduled_for_ms, ms, summary = %o.summary, "scheduled run done")
            }
            Err(e) => {
                tracing::warn!(job = name, scheduled_for_ms, ms, error = %e, "scheduled run failed")
            }
        }
        if let Some(store) = self.db.try_get()
            && let Err(e) = store
                .finish_run(name, slot.timestamp_millis(), &result)
                .await
        {
            tracing::warn!(job = name, error = %e, "cannot record the end of a run");
        }
    }
}

struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
