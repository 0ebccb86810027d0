//! `briefing_schedules`: when a user gets a briefing.

use sea_orm::entity::prelude::*;

/// One user's briefing schedule.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "briefing_schedules")]
pub struct Model {
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// `weekly` or `monthly`.
    pub period: String,
    /// The user's IANA time zone.
    pub time_zone: String,
    /// The contextual core the briefing is for.
    pub contextual_core_id: String,
    /// The next due run, ms since the epoch.
    pub next_run_ms: i64,
    /// When it was last set.
    pub updated_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
