//! `notification_deliveries`: one row per attempt to reach a person on one channel,
//! unique per (notification, channel, attempt).

use sea_orm::entity::prelude::*;

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_deliveries")]
pub struct Model {
    /// The notification.
    #[sea_orm(primary_key, auto_increment = false)]
    pub notification_id: String,
    /// `email`, `push` or `websocket`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    /// 1 for the first attempt on this channel.
    #[sea_orm(primary_key, auto_increment = false)]
    pub attempt: i32,
    /// Whether it reached the person.
    pub success: bool,
    /// `delivered`, `transient`, `permanent` or `unreachable`: whether another
    /// attempt is owed (only after `transient`).
    pub outcome: String,
    /// Why it failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// How long the attempt took.
    pub delivery_time_ms: f64,
    /// When it was made (RFC 3339).
    pub at: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
