//! Events of `notification.events`: notifications and briefings.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{event_type, streams::NOTIFICATION};

/// Kinds of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationType {
    BriefingReady,
    SystemAlert,
    ContentSuggestion,
}

/// Delivery channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Push,
    Websocket,
}

/// Notification priority (one more level than requests have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationPriority {
    Low,
    Normal,
    High,
    Critical,
}

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
}

/// `notification.send.requested`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationSendRequested {
    pub user_id: String,
    pub notification_type: NotificationType,
    pub channels: Vec<Channel>,
    pub message: Message,
    pub priority: NotificationPriority,
}
event_type!(
    NotificationSendRequested,
    "notification.send.requested",
    NOTIFICATION
);

/// `notification.delivered`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationDelivered {
    pub notification_id: String,
    pub user_id: String,
    pub channel: String,
    pub delivery_time_ms: f64,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
event_type!(
    NotificationDelivered,
    "notification.delivered",
    NOTIFICATION
);

/// Briefing periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BriefingPeriod {
    Weekly,
    Monthly,
}

/// `briefing.generation.scheduled`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BriefingGenerationScheduled {
    pub user_id: String,
    pub contextual_core_id: String,
    pub briefing_period: BriefingPeriod,
    pub scheduled_time: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}
event_type!(
    BriefingGenerationScheduled,
    "briefing.generation.scheduled",
    NOTIFICATION
);
