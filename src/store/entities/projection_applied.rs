//! `projection_applied`: which events each projection has applied; written in the
//! same transaction as the projection's state, so an event is applied once.

use sea_orm::entity::prelude::*;

/// One applied event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projection_applied")]
pub struct Model {
    /// The projection's name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub projection: String,
    /// The event's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
