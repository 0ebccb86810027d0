//! `content_drafts`: one row per generated draft, keyed also by the request event
//! that produced it, so a redelivered request finds its draft instead of making a
//! second one.

use sea_orm::entity::prelude::*;

/// One draft.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "content_drafts")]
pub struct Model {
    /// The draft id (a ULID).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Whose it is.
    pub user_id: String,
    /// The contextual core it was written from.
    pub contextual_core_id: String,
    /// social_post, blog_article, marketing_copy, email.
    pub content_type: String,
    /// A title, if it has one.
    pub title: Option<String>,
    /// The text.
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// The generation request that produced it.
    pub request_id: Option<String>,
    /// The id of the request event (unique: one draft per request event).
    #[sea_orm(unique)]
    pub source_event_id: String,
    /// Which provider wrote it.
    pub ai_provider: String,
    /// Which model.
    pub model_used: String,
    /// Tokens read and written.
    pub tokens_used: i64,
    /// What it cost.
    pub cost_usd: f64,
    /// How long the provider took.
    pub generation_time_ms: f64,
    /// The id of its `ai.content.generation.completed` event.
    pub completion_event_id: String,
    /// The id of its `content.draft.created` event.
    pub created_event_id: String,
    /// When it was made.
    pub created_at_ms: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
