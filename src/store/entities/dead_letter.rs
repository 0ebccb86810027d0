//! `dead_letters`: the durable record of every dead letter, mirrored from the
//! capped `{<stream>}.dlq` streams, with what an operator did to it.

use sea_orm::entity::prelude::*;

/// One dead letter.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    /// `<stream>:<dead-letter entry id>`, e.g. `ai.events:1732881600000-0`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The stream it came from (without prefix).
    pub stream: String,
    /// Milliseconds part of its dead-letter entry id (order of arrival).
    pub entry_ms: i64,
    /// Sequence part of its dead-letter entry id.
    pub entry_seq: i64,
    /// The event's id, when the entry had one.
    pub event_id: Option<String>,
    /// The event's type, when the entry had one.
    pub event_type: Option<String>,
    /// `dlq_reason`.
    pub reason: String,
    /// `dlq_error`.
    #[sea_orm(column_type = "Text")]
    pub error: String,
    /// `dlq_group`: the group that failed it.
    pub group_name: String,
    /// `dlq_attempts`.
    pub attempts: i32,
    /// `dlq_original_id`: its entry id in the original stream.
    pub original_id: String,
    /// `dlq_at` (RFC 3339).
    pub at: String,
    /// Times it had been sent back before it failed again.
    pub reprocessed: i32,
    /// The original fields, a JSON object of strings.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    /// `open`, `reprocessed` or `purged`.
    pub status: String,
    /// When the row last changed, ms since the epoch.
    pub updated_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
