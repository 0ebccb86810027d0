//! `scheduled_runs`: one row per (job, slot); its insert is the claim of the slot.

use sea_orm::entity::prelude::*;

/// One run of a scheduled job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scheduled_runs")]
pub struct Model {
    /// The job's name (or `briefing:<user>:<period>` for a user's briefing).
    #[sea_orm(primary_key, auto_increment = false)]
    pub job: String,
    /// The slot, ms since the epoch (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub scheduled_for_ms: i64,
    /// The process that claimed it.
    pub owner: String,
    /// When it started.
    pub started_at_ms: i64,
    /// When it ended (None while running or when its process died).
    pub finished_at_ms: Option<i64>,
    /// `running`, `ok` or `failed`.
    pub outcome: String,
    /// The job's summary or the error.
    pub summary: Option<String>,
    /// The job's counts, as a JSON object.
    pub counts: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
