//! `preference_history`: every change of every preference, old and new value.

use sea_orm::entity::prelude::*;

/// One changed field.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "preference_history")]
pub struct Model {
    /// The event that changed it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    /// The field.
    #[sea_orm(primary_key, auto_increment = false)]
    pub field: String,
    /// The user.
    pub user_id: String,
    /// Old value, JSON text.
    #[sea_orm(column_type = "Text", nullable)]
    pub old_value: Option<String>,
    /// New value, JSON text.
    #[sea_orm(column_type = "Text", nullable)]
    pub new_value: Option<String>,
    /// The event's Redis entry id.
    pub entry_id: String,
    /// When the event happened.
    pub timestamp_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
