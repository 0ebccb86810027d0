//! `events`: every event ever published, append-only, one row per event id.

use sea_orm::entity::prelude::*;

/// One archived event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// The event's ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Its stream.
    pub stream: String,
    /// Its type.
    pub event_type: String,
    /// Its schema version as published.
    pub version: i32,
    /// When it happened, ms since the epoch.
    pub timestamp_ms: i64,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// The user it concerns.
    pub user_id: Option<String>,
    /// The payload, JSON text.
    #[sea_orm(column_type = "Text")]
    pub data: String,
    /// Metadata, JSON text.
    #[sea_orm(column_type = "Text", nullable)]
    pub metadata: Option<String>,
    /// The Redis entry id it had.
    pub entry_id: String,
    /// Milliseconds part of the entry id (stream order).
    pub entry_ms: i64,
    /// Sequence part of the entry id.
    pub entry_seq: i64,
    /// When it was archived.
    pub archived_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
