//! `user_preferences`: each user's current preferences (the design's
//! UserPreferencesProjection).

use sea_orm::entity::prelude::*;

/// One user's preferences.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "user_preferences")]
pub struct Model {
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// Field → value, JSON text.
    #[sea_orm(column_type = "Text")]
    pub preferences: String,
    /// Field → Redis entry id of the event that last set it, JSON text: the newest
    /// write wins whatever order events arrive in.
    #[sea_orm(column_type = "Text")]
    pub versions: String,
    /// The embedding model in use.
    pub embedding_model: Option<String>,
    /// Entry id of the event that set it.
    pub embedding_model_version: Option<String>,
    /// The last event applied to this user.
    pub last_event_id: String,
    /// When it last changed.
    pub updated_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
