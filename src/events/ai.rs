//! Events of `ai.events`: content generation and consultations.
//!
//! Beyond the design: `variables` of a generation request (the values of its
//! prompt template's placeholders; optional, so a request written to the design's
//! shape still decodes), and the two `.failed` events, which end a request-response
//! wait at once when a request cannot be answered (unknown template, a provider that
//! refuses) instead of leaving it to time out.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{event_type, streams::AI};

/// Kinds of generated content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    SocialPost,
    BlogArticle,
    MarketingCopy,
    Email,
}

/// `ai.content.generation.requested`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AiContentGenerationRequested {
    pub request_id: String,
    pub user_id: String,
    pub contextual_core_id: String,
    pub content_type: ContentType,
    pub prompt_template: String,
    pub ai_provider: String,
    pub max_tokens: u32,
    /// Values of the template's `{{placeholders}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
}
event_type!(
    AiContentGenerationRequested,
    "ai.content.generation.requested",
    AI
);

/// `ai.content.generation.completed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AiContentGenerationCompleted {
    pub request_id: String,
    pub content_draft_id: String,
    pub generated_content: String,
    pub ai_provider: String,
    pub model_used: String,
    pub tokens_used: u32,
    pub generation_time_ms: f64,
    pub cost_usd: f64,
}
event_type!(
    AiContentGenerationCompleted,
    "ai.content.generation.completed",
    AI
);

/// Kinds of consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    StrategicAdvice,
    TrendAnalysis,
    GoalPlanning,
}

/// `ai.consultation.requested`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AiConsultationRequested {
    pub session_id: String,
    pub user_id: String,
    pub contextual_core_id: String,
    pub query: String,
    pub session_type: SessionType,
}
event_type!(AiConsultationRequested, "ai.consultation.requested", AI);

/// `ai.consultation.completed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AiConsultationCompleted {
    pub session_id: String,
    pub response: String,
    pub confidence_score: f64,
    pub market_data_referenced: Vec<String>,
    pub ai_provider: String,
    pub tokens_used: u32,
}
event_type!(AiConsultationCompleted, "ai.consultation.completed", AI);

/// `ai.content.generation.failed`: a generation request that will not be answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AiContentGenerationFailed {
    pub request_id: String,
    pub error: String,
    pub ai_provider: String,
}
event_type!(
    AiContentGenerationFailed,
    "ai.content.generation.failed",
    AI
);

/// `ai.consultation.failed`: a consultation that will not be answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AiConsultationFailed {
    pub session_id: String,
    pub error: String,
    pub ai_provider: String,
}
event_type!(AiConsultationFailed, "ai.consultation.failed", AI);
