//! `file_texts`: the text extracted from a file (step 1 of the processing saga).

use sea_orm::entity::prelude::*;

/// One file's text.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "file_texts")]
pub struct Model {
    /// The file.
    #[sea_orm(primary_key, auto_increment = false)]
    pub file_id: String,
    /// SHA-256 of the text, hex: the embedding cache's key.
    pub content_hash: String,
    /// The text.
    #[sea_orm(column_type = "Text")]
    pub text: String,
    /// Characters.
    pub length: i64,
    /// What it was extracted as (pdf, docx, html, ...).
    pub kind: String,
    /// Whether the text was cut at the configured maximum.
    pub truncated: bool,
    /// When.
    pub extracted_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
