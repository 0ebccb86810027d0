//! Events of `content.events`: drafts created, edited, published (implied by the
//! design's AI content generation, which produces a `content_draft_id`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ai::ContentType, event_type, streams::CONTENT};

/// `content.draft.created`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContentDraftCreated {
    pub draft_id: String,
    pub user_id: String,
    pub contextual_core_id: String,
    pub content_type: ContentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The generation request that produced it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
event_type!(ContentDraftCreated, "content.draft.created", CONTENT);

/// `content.draft.updated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContentDraftUpdated {
    pub draft_id: String,
    pub user_id: String,
    pub changed_fields: Vec<String>,
}
event_type!(ContentDraftUpdated, "content.draft.updated", CONTENT);

/// `content.draft.published`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContentDraftPublished {
    pub draft_id: String,
    pub user_id: String,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_url: Option<String>,
}
event_type!(ContentDraftPublished, "content.draft.published", CONTENT);
