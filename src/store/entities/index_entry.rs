//! `index_entries`: which chunks a contextual core searches (step 3 of the
//! processing saga): one row per chunk of an indexed file.

use sea_orm::entity::prelude::*;

/// One indexed chunk.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "index_entries")]
pub struct Model {
    /// The file.
    #[sea_orm(primary_key, auto_increment = false)]
    pub file_id: String,
    /// The chunk.
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk_index: i32,
    /// Whose.
    pub user_id: String,
    /// The core that searches it.
    pub contextual_core_id: String,
    /// The text's hash (its vectors are in `embedding_chunks`).
    pub content_hash: String,
    /// The model its vectors were made with.
    pub model: String,
    /// When.
    pub indexed_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
