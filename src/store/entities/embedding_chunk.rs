//! `embedding_chunks`: the embedding of each chunk of a text, by the text's hash and
//! the model: the cache that keeps the same text from being embedded twice.

use sea_orm::entity::prelude::*;

/// One chunk's vector.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "embedding_chunks")]
pub struct Model {
    /// SHA-256 of the whole text, hex.
    #[sea_orm(primary_key, auto_increment = false)]
    pub content_hash: String,
    /// The embedding model.
    #[sea_orm(primary_key, auto_increment = false)]
    pub model: String,
    /// Position of the chunk in the text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk_index: i32,
    /// First character of the chunk in the text.
    pub start_char: i64,
    /// One past its last character.
    pub end_char: i64,
    /// The chunk's text.
    #[sea_orm(column_type = "Text")]
    pub text: String,
    /// The vector: little-endian f32s.
    #[serde(skip)]
    pub vector: Vec<u8>,
    /// Its length.
    pub dimensions: i32,
    /// When.
    pub created_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
