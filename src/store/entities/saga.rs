//! `sagas`: one row per saga instance, written before each step's request is
//! published.

use sea_orm::entity::prelude::*;

/// One saga instance.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "sagas")]
pub struct Model {
    /// Its correlation id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The definition's name.
    pub saga: String,
    /// running, compensating, completed, failed.
    pub status: String,
    /// The current step.
    pub step: i32,
    /// Its data, JSON text.
    #[sea_orm(column_type = "Text")]
    pub data: String,
    /// Attempts of the current step.
    pub attempts: i32,
    /// When the current step times out (0: not waiting); set when its request is
    /// issued, indexed for the sweep of every live process.
    pub deadline_ms: i64,
    /// The current step's request event id.
    pub request_id: Option<String>,
    /// Why it failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// Step records, JSON text.
    #[sea_orm(column_type = "Text")]
    pub history: String,
    /// Events saved but not yet known to be published (JSON text of the saga's
    /// outbox); NULL when there are none, so the sweep's query can tell at a glance.
    #[sea_orm(column_type = "Text", nullable)]
    pub outbox: Option<String>,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// When it last changed.
    pub updated_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
