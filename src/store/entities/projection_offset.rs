//! `projection_offsets`: the last event each projection applied.

use sea_orm::entity::prelude::*;

/// One projection's position.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projection_offsets")]
pub struct Model {
    /// The projection's name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub projection: String,
    /// The id of the last event applied.
    pub last_event_id: String,
    /// When.
    pub updated_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
