//! The notification as people's clients see it, written in one place: the JSON
//! object of `GET /api/v1/notifications` and of the WebSocket frames, and the
//! frames a client sends back.
//!
//! Server frames: `{"type":"notification","notification":{...}}` and, once after
//! the replay, `{"type":"replayed","count":N}`. Client frames: `{"type":"ack","id"}`
//! and `{"type":"read","id"}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::channel::Outgoing;
use crate::store::entities::notification;

/// One notification, as the API and the WebSocket show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// The id (ULID) of its `notification.send.requested` event: ids sort by time.
    pub id: String,
    /// `briefing_ready`, `system_alert` or `content_suggestion`.
    pub notification_type: String,
    /// The title.
    pub title: String,
    /// The body.
    pub body: String,
    /// Where the person can act on it.
    pub action_url: Option<String>,
    /// `low`, `normal`, `high` or `critical`.
    pub priority: String,
    /// When it was requested (RFC 3339).
    pub created_at: String,
    /// When a client acknowledged it (RFC 3339).
    pub delivered_at: Option<String>,
    /// When the person read it (RFC 3339).
    pub read_at: Option<String>,
}

impl From<notification::Model> for NotificationView {
    fn from(m: notification::Model) -> Self {
        NotificationView {
            id: m.id,
            notification_type: m.notification_type,
            title: m.title,
            body: m.body,
            action_url: m.action_url,
            priority: m.priority,
            created_at: m.created_at,
            delivered_at: m.delivered_at,
            read_at: m.read_at,
        }
    }
}

impl From<&Outgoing> for NotificationView {
    fn from(n: &Outgoing) -> Self {
        NotificationView {
            id: n.id.clone(),
            notification_type: n.notification_type.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            action_url: n.action_url.clone(),
            priority: n.priority.clone(),
            created_at: n.created_at.clone(),
            delivered_at: None,
            read_at: None,
        }
    }
}

/// A frame the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// One notification (replayed or live).
    Notification {
        /// The notification.
        notification: &'a NotificationView,
    },
    /// The replay on connect is over; live notifications follow.
    Replayed {
        /// How many were replayed.
        count: u64,
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON text.
    pub fn text(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The client received notification `id`.
    Ack {
        /// The notification.
        id: String,
    },
    /// The person read notification `id`.
    Read {
        /// The notification.
        id: String,
    },
}

/// Now as RFC 3339 with milliseconds, UTC (the form every stored time has).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_agreed_shape() {
        let v = NotificationView {
            id: "01J0000000000000000000000A".into(),
            notification_type: "system_alert".into(),
            title: "t".into(),
            body: "b".into(),
            action_url: None,
            priority: "critical".into(),
            created_at: "2026-11-30T12:00:00.000Z".into(),
            delivered_at: None,
            read_at: None,
        };
        let f: serde_json::Value =
            serde_json::from_str(&ServerFrame::Notification { notification: &v }.text()).unwrap();
        assert_eq!(f["type"], "notification");
        assert_eq!(f["notification"]["id"], v.id);
        assert!(f["notification"]["action_url"].is_null());
        assert!(f["notification"]["read_at"].is_null());
        let r: serde_json::Value =
            serde_json::from_str(&ServerFrame::Replayed { count: 3 }.text()).unwrap();
        assert_eq!(r, serde_json::json!({"type": "replayed", "count": 3}));
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"read","id":"x"}"#).unwrap(),
            ClientFrame::Read { id: "x".into() }
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
    }
}
