//! `ai_requests`: every generation and consultation request and its outcome, so a
//! client that stopped waiting (504) can fetch the answer later.

use sea_orm::entity::prelude::*;

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "ai_requests")]
pub struct Model {
    /// The request id (generation) or session id (consultation); also the
    /// correlation id of its events.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// `content` or `consultation`.
    pub kind: String,
    /// Whose it is.
    pub user_id: String,
    /// pending, completed, failed.
    pub status: String,
    /// The request payload, JSON text.
    #[sea_orm(column_type = "Text")]
    pub request: String,
    /// The reply event's payload, JSON text, once there is one.
    #[sea_orm(column_type = "Text", nullable)]
    pub result: Option<String>,
    /// Why it failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// The id of the reply event (re-published with the same id after a crash).
    pub reply_event_id: Option<String>,
    /// When it was asked.
    pub created_at_ms: i64,
    /// When it was answered.
    pub completed_at_ms: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
