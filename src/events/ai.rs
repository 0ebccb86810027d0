//! Events of `ai.events`: content generation and consultations.

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
