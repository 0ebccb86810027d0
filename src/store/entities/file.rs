//! `files`: one row per upload (the bytes are on disk, content-addressed).

use sea_orm::entity::prelude::*;

/// One uploaded file.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "files")]
pub struct Model {
    /// The file id (a ULID; also the processing saga's id).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Whose it is.
    pub user_id: String,
    /// The contextual core it belongs to.
    pub contextual_core_id: String,
    /// The name it was uploaded with (for display only; never a path).
    pub filename: String,
    /// Bytes.
    pub size: i64,
    /// Sniffed from the bytes.
    pub mime_type: String,
    /// SHA-256 of the bytes, hex: its name on disk.
    pub sha256: String,
    /// When it was uploaded.
    pub created_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
