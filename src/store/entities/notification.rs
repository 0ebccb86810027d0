//! `notifications`: one row per `notification.send.requested` event, keyed by the
//! event's id (a ULID), so ids sort by time and a redelivered event stores nothing
//! new.

use sea_orm::entity::prelude::*;

/// One notification to one person.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    /// The id of the `notification.send.requested` event.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Whom it is for.
    pub user_id: String,
    /// `briefing_ready`, `system_alert` or `content_suggestion`.
    pub notification_type: String,
    /// The title.
    #[sea_orm(column_type = "Text")]
    pub title: String,
    /// The body.
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// Where the person can act on it.
    #[sea_orm(column_type = "Text", nullable)]
    pub action_url: Option<String>,
    /// `low`, `normal`, `high` or `critical`.
    pub priority: String,
    /// When it was requested (RFC 3339, the event's timestamp).
    pub created_at: String,
    /// When a client acknowledged it (RFC 3339).
    pub delivered_at: Option<String>,
    /// When the person read it (RFC 3339).
    pub read_at: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
