//! `dead_letter_checkpoints`: per stream, how far the dead-letter mirror has read
//! the dead-letter stream and its audit trail.

use sea_orm::entity::prelude::*;

/// One stream's position.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letter_checkpoints")]
pub struct Model {
    /// The stream (without prefix).
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    /// The last `{<stream>}.dlq` entry id recorded (`-`: none yet).
    pub dlq_after: String,
    /// The last `{<stream>}.dlq.audit` entry id applied (`-`: none yet).
    pub audit_after: String,
    /// When it last moved.
    pub updated_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
