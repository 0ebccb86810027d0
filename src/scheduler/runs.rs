//! The run records (`scheduled_runs`): the claim of a slot is the insert of its row.
//!
//! Invariant: [`Store::claim_run`] returns true to exactly one caller per (job,
//! slot) across every process on the database (`ON CONFLICT DO NOTHING` on the
//! primary key, the same on SQLite and PostgreSQL).

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::job::{JobError, JobOutcome};
use crate::store::entities::scheduled_run;
use crate::store::{Store, StoreError};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Claims (job, slot) for `owner`; false when another claim was first.
    pub async fn claim_run(
        &self,
        job: &str,
        scheduled_for_ms: i64,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let row = scheduled_run::ActiveModel {
            job: Set(job.to_owned()),
            scheduled_for_ms: Set(scheduled_for_ms),
            owner: Set(owner.to_owned()),
            started_at_ms: Set(now_ms()),
            finished_at_ms: Set(None),
            outcome: Set("running".to_owned()),
            summary: Set(None),
            counts: Set(None),
        };
        let inserted = scheduled_run::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    scheduled_run::Column::Job,
                    scheduled_run::Column::ScheduledForMs,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(inserted == 1)
    }

    /// Records how a claimed run ended.
    pub async fn finish_run(
        &self,
        job: &str,
        scheduled_for_ms: i64,
        result: &Result<JobOutcome, JobError>,
    ) -> Result<(), StoreError> {
        let (outcome, summary, counts) = match result {
            Ok(o) => (
                "ok",
                o.summary.clone(),
                serde_json::to_string(&o.counts).ok(),
            ),
            Err(e) => ("failed", e.to_string(), None),
        };
        scheduled_run::Entity::update_many()
            .col_expr(
                scheduled_run::Column::FinishedAtMs,
                sea_orm::sea_query::Expr::value(now_ms()),
            )
            .col_expr(
                scheduled_run::Column::Outcome,
                sea_orm::sea_query::Expr::value(outcome),
            )
            .col_expr(
                scheduled_run::Column::Summary,
                sea_orm::sea_query::Expr::value(summary),
            )
            .col_expr(
                scheduled_run::Column::Counts,
                sea_orm::sea_query::Expr::value(counts),
            )
            .filter(scheduled_run::Column::Job.eq(job))
            .filter(scheduled_run::Column::ScheduledForMs.eq(scheduled_for_ms))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Gives a claim back (its work could not start), so a later tick may retry.
    pub async fn release_run(&self, job: &str, scheduled_for_ms: i64) -> Result<(), StoreError> {
        scheduled_run::Entity::delete_many()
            .filter(scheduled_run::Column::Job.eq(job))
            .filter(scheduled_run::Column::ScheduledForMs.eq(scheduled_for_ms))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The run records of `job`, oldest first (tests, operators).
    pub async fn runs_of(&self, job: &str) -> Result<Vec<scheduled_run::Model>, StoreError> {
        use sea_orm::QueryOrder;
        Ok(scheduled_run::Entity::find()
            .filter(scheduled_run::Column::Job.eq(job))
            .order_by_asc(scheduled_run::Column::ScheduledForMs)
            .all(&self.db)
            .await?)
    }
}
