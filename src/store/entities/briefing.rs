//! `briefings`: the briefings written, one per user, period kind and period.

use sea_orm::entity::prelude::*;

/// One briefing.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "briefings")]
pub struct Model {
    /// A ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Whose.
    pub user_id: String,
    /// `weekly` or `monthly`.
    pub period: String,
    /// The period's local start, ms since the epoch.
    pub period_start_ms: i64,
    /// The period's local end (exclusive), ms since the epoch.
    pub period_end_ms: i64,
    /// The contextual core.
    pub contextual_core_id: String,
    /// The briefing's sections, a JSON object.
    pub content: String,
    /// The model that wrote it.
    pub model_used: String,
    /// The `briefing.generation.scheduled` it answers.
    pub scheduled_event_id: String,
    /// When it was written.
    pub created_at_ms: i64,
    /// When `notification.send.requested` went out (None: not yet).
    pub notified_at_ms: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
