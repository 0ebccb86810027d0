//! Events of `user.events`: sign-up, login, preferences.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{event_type, streams::USER};

/// The two subscription tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// `sovereign_circle`
    SovereignCircle,
    /// `individual_pro`
    IndividualPro,
}

/// `user.registered`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: String,
    /// Personal data: never logged.
    pub email: String,
    pub tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_source: Option<String>,
}
event_type!(UserRegistered, "user.registered", USER, ordered_by "user_id");

/// `user.preferences.updated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserPreferencesUpdated {
    pub user_id: String,
    pub changed_fields: Vec<String>,
    pub old_values: Map<String, Value>,
    pub new_values: Map<String, Value>,
}
event_type!(UserPreferencesUpdated, "user.preferences.updated", USER, ordered_by "user_id");

/// `user.login`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserLogin {
    pub user_id: String,
    /// Personal data: never logged.
    pub ip_address: String,
    /// Personal data: never logged.
    pub user_agent: String,
    pub success: bool,
}
event_type!(UserLogin, "user.login", USER, ordered_by "user_id");

/// `user.embedding.model.changed` (implied by the design's preferences projection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserEmbeddingModelChanged {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_model_id: Option<String>,
    pub new_model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
event_type!(
    UserEmbeddingModelChanged,
    "user.embedding.model.changed",
    USER,
    ordered_by "user_id"
);
