//! Briefings: per-user weekly or monthly summaries of the market, in the user's
//! time zone.
//!
//! A user stores a schedule (`PUT /briefings/schedule`); its next run is the next
//! time of the period's cron expression in the user's zone (croner, DST-correct).
//! The scheduler's `briefings` job finds due schedules; each due (user, period) is
//! claimed once across processes by a row in `scheduled_runs` keyed
//! `briefing:<user>:<period>` at the period's start, so a period yields one
//! `briefing.generation.scheduled`, also when several processes or ticks see it,
//! and also after a downtime shorter than the grace window (a longer one skips to
//! the next run). The `briefing-generator` pool writes the briefing
//! ([`generator`]), stores it once per user and period, and asks for a
//! `briefing_ready` notification.

pub mod generator;
pub mod market;
pub mod store;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt as _, stream};
use serde::Deserialize;
use strategist_actors::Publisher;

use crate::database::Db;
use crate::events::notification::{BriefingGenerationScheduled, BriefingPeriod};
use crate::scheduler::calendar::{self, CalendarError};
use crate::scheduler::{Job, JobError, JobOutcome};

/// Due schedules handled at once by one run of the job.
const CONCURRENCY: usize = 16;

/// `[briefings]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BriefingSettings {
    /// When a weekly briefing runs, in the user's zone (cron).
    pub weekly_cron: String,
    /// When a monthly briefing runs, in the user's zone (cron).
    pub monthly_cron: String,
    /// A run missed by at most this long still happens, once.
    pub grace_ms: u64,
    /// The most due schedules one job run handles (the rest at the next run).
    pub batch: u64,
}

/// The period's name as stored.
pub fn period_name(p: BriefingPeriod) -> &'static str {
    match p {
        BriefingPeriod::Weekly => "weekly",
        BriefingPeriod::Monthly => "monthly",
    }
}

/// A stored period name.
pub fn period_from(name: &str) -> Option<BriefingPeriod> {
    match name {
        "weekly" => Some(BriefingPeriod::Weekly),
        "monthly" => Some(BriefingPeriod::Monthly),
        _ => None,
    }
}

/// The first run of `period` in `zone` after `after`.
pub fn next_run(
    settings: &BriefingSettings,
    period: BriefingPeriod,
    zone: &str,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, CalendarError> {
    let tz = calendar::zone(zone)?;
    let cron = calendar::parse(calendar::briefing_cron(
        period,
        &settings.weekly_cron,
        &settings.monthly_cron,
    ))?;
    Ok(calendar::utc(&calendar::next_after(&cron, after, &tz)?))
}

/// The scheduler's `briefings` job: publishes `briefing.generation.scheduled` for
/// every due schedule and moves it to its next run.
pub struct BriefingsJob {
    db: Db,
    publisher: Publisher,
    settings: BriefingSettings,
}

impl BriefingsJob {
    /// The job.
    pub fn new(db: Db, publisher: Publisher, settings: BriefingSettings) -> Self {
        BriefingsJob {
            db,
            publisher,
            settings,
        }
    }

    async fn run_due(&self) -> Result<JobOutcome, JobError> {
        let store = self
            .db
            .try_get()
            .ok_or_else(|| JobError("the database is not open yet".into()))?;
        let now = Utc::now();
        let grace = chrono::Duration::milliseconds(
            i64::try_from(self.settings.grace_ms).unwrap_or(i64::MAX),
        );
        let due = store
            .due_briefing_schedules(now.timestamp_millis(), self.settings.batch.max(1))
            .await
            .map_err(|e| JobError(e.to_string()))?;
        // Several at a time: each is a few round trips to the database and Redis.
        let labels: Vec<Result<&'static str, JobError>> = stream::iter(due)
            .map(|s| self.one_due(store, s, now, grace))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut outcome = JobOutcome::default();
        for label in labels {
            *outcome.counts.entry(label?.to_owned()).or_insert(0) += 1;
        }
        outcome.summary = outcome
            .counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(outcome)
    }

    /// One due schedule: scheduled (or skipped past the grace window) and moved to
    /// its next run; a label for the counts.
    async fn one_due(
        &self,
        store: &crate::store::Store,
        s: crate::store::entities::briefing_schedule::Model,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Result<&'static str, JobError> {
        let Some(period) = period_from(&s.period) else {
            return Ok("invalid");
        };
        let Some(run_at) = DateTime::from_timestamp_millis(s.next_run_ms) else {
            return Ok("invalid");
        };
        let next = match next_run(&self.settings, period, &s.time_zone, now) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "a briefing schedule cannot be computed");
                return Ok("invalid");
            }
        };
        let label = if now - run_at <= grace {
            match self.schedule_one(store, &s, period, run_at).await {
                Ok(true) => "scheduled",
                Ok(false) => "already_claimed",
                Err(e) => {
                    // The schedule stays due: the next run tries again.
                    tracing::warn!(error = %e, "cannot schedule a briefing");
                    return Ok("failed");
                }
            }
        } else {
            "skipped_past_grace"
        };
        store
            .advance_briefing_schedule(&s.user_id, s.next_run_ms, next.timestamp_millis())
            .await
            .map_err(|e| JobError(e.to_string()))?;
        Ok(label)
    }

    /// Claims (user, period) and publishes; false when it was claimed before.
    async fn schedule_one(
        &self,
        store: &crate::store::Store,
        s: &crate::store::entities::briefing_schedule::Model,
        period: BriefingPeriod,
        run_at: DateTime<Utc>,
    ) -> Result<bool, String> {
        let tz = calendar::zone(&s.time_zone).map_err(|e| e.to_string())?;
        let local = jiff::Timestamp::from_millisecond(run_at.timestamp_millis())
            .map_err(|e| e.to_string())?
            .to_zoned(tz);
        let (start, end) = calendar::period_before(period, &local).map_err(|e| e.to_string())?;
        let (start, end) = (calendar::utc(&start), calendar::utc(&end));
        let key = format!("briefing:{}:{}", s.user_id, period_name(period));
        let slot = start.timestamp_millis();
        if !store
            .claim_run(&key, slot, "briefings")
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(false);
        }
        let data = BriefingGenerationScheduled {
            user_id: s.user_id.clone(),
            contextual_core_id: s.contextual_core_id.clone(),
            briefing_period: period,
            scheduled_time: run_at,
            period_start: start,
            period_end: end,
        };
        let user = s.user_id.clone();
        let published = self
            .publisher
            .publish_typed(&data, |e| e.with_user(user))
            .await;
        let result = match &published {
            Ok(p) => Ok(JobOutcome {
                summary: format!("published {}", p.event_id),
                counts: Default::default(),
            }),
            Err(e) => Err(JobError(e.to_string())),
        };
        if published.is_err() {
            // Not published: give the claim back so the next run tries again.
            let _ = store.release_run(&key, slot).await;
            return Err(result.err().map(|e| e.0).unwrap_or_default());
        }
        let _ = store.finish_run(&key, slot, &result).await;
        Ok(true)
    }
}

impl Job for BriefingsJob {
    fn name(&self) -> &'static str {
        "briefings"
    }

    fn run<'a>(
        &'a self,
        _scheduled_for: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(self.run_due())
    }
}
