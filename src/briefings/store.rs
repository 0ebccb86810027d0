//! Briefing schedules and briefings in the database.
//!
//! Invariants: a user has at most one schedule; a briefing is stored once per
//! (user, period kind, period start) whatever the redeliveries (a unique index and
//! `ON CONFLICT DO NOTHING`; the row that won is read back).

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::store::entities::{briefing, briefing_schedule};
use crate::store::{Store, StoreError};

impl Store {
    /// Sets `user_id`'s schedule (replacing any).
    pub async fn set_briefing_schedule(
        &self,
        row: briefing_schedule::Model,
    ) -> Result<(), StoreError> {
        briefing_schedule::Entity::insert(briefing_schedule::ActiveModel::from(row))
            .on_conflict(
                OnConflict::column(briefing_schedule::Column::UserId)
                    .update_columns([
                        briefing_schedule::Column::Period,
                        briefing_schedule::Column::TimeZone,
                        briefing_schedule::Column::ContextualCoreId,
                        briefing_schedule::Column::NextRunMs,
                        briefing_schedule::Column::UpdatedAtMs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// `user_id`'s schedule.
    pub async fn briefing_schedule(
        &self,
        user_id: &str,
    ) -> Result<Option<briefing_schedule::Model>, StoreError> {
        Ok(briefing_schedule::Entity::find_by_id(user_id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Schedules due at `now_ms`, earliest first, at most `limit`.
    pub async fn due_briefing_schedules(
        &self,
        now_ms: i64,
        limit: u64,
    ) -> Result<Vec<briefing_schedule::Model>, StoreError> {
        Ok(briefing_schedule::Entity::find()
            .filter(briefing_schedule::Column::NextRunMs.lte(now_ms))
            .order_by_asc(briefing_schedule::Column::NextRunMs)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Moves a schedule's next run from `from_ms` to `to_ms`, unless someone moved
    /// it already (or the user set a new schedule).
    pub async fn advance_briefing_schedule(
        &self,
        user_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(), StoreError> {
        briefing_schedule::Entity::update_many()
            .col_expr(briefing_schedule::Column::NextRunMs, Expr::value(to_ms))
            .filter(briefing_schedule::Column::UserId.eq(user_id))
            .filter(briefing_schedule::Column::NextRunMs.eq(from_ms))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Stores `row` unless the user has a briefing for that period already; returns
    /// the stored one (`row` or the earlier).
    pub async fn save_briefing(&self, row: briefing::Model) -> Result<briefing::Model, StoreError> {
        briefing::Entity::insert(briefing::ActiveModel::from(row.clone()))
            .on_conflict(
                OnConflict::columns([
                    briefing::Column::UserId,
                    briefing::Column::Period,
                    briefing::Column::PeriodStartMs,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        briefing::Entity::find()
            .filter(briefing::Column::UserId.eq(&row.user_id))
            .filter(briefing::Column::Period.eq(&row.period))
            .filter(briefing::Column::PeriodStartMs.eq(row.period_start_ms))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Conflict("the briefing just stored is gone".into()))
    }

    /// Records that the briefing's notification was requested.
    pub async fn briefing_notified(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        briefing::Entity::update_many()
            .col_expr(briefing::Column::NotifiedAtMs, Expr::value(at_ms))
            .filter(briefing::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// One briefing by id.
    pub async fn briefing(&self, id: &str) -> Result<Option<briefing::Model>, StoreError> {
        Ok(briefing::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// `user_id`'s briefings, newest period first, at most `limit`.
    pub async fn briefings_of(
        &self,
        user_id: &str,
        limit: u64,
    ) -> Result<Vec<briefing::Model>, StoreError> {
        Ok(briefing::Entity::find()
            .filter(briefing::Column::UserId.eq(user_id))
            .order_by_desc(briefing::Column::PeriodStartMs)
            .order_by_desc(briefing::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}
