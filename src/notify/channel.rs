//! A channel is one way of reaching a person (`email`, `push`, `websocket`): the
//! notifier asks each channel that a notification names, and records one
//! `notification.delivered` per attempt.
//!
//! Invariant: `send` makes one attempt and never retries; retries, dead letters and
//! the record of what was delivered belong to the notifier.

use futures_util::future::BoxFuture;

/// What a channel delivers: the stored notification, as the person will see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outgoing {
    /// The notification's id: the id (ULID) of its `notification.send.requested` event.
    pub id: String,
    /// Whom it is for.
    pub user_id: String,
    /// `briefing_ready`, `system_alert` or `content_suggestion`.
    pub notification_type: String,
    /// The message's title.
    pub title: String,
    /// The message's body.
    pub body: String,
    /// Where the person can act on it, if anywhere.
    pub action_url: Option<String>,
    /// `low`, `normal`, `high` or `critical`.
    pub priority: String,
    /// When it was requested (RFC 3339).
    pub created_at: String,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Worth trying again later: a timeout, a 5xx or 429, a refused connection.
    #[error("{0}")]
    Transient(String),
    /// Fails again the same way: a malformed address, a 4xx, a missing setting.
    #[error("{0}")]
    Permanent(String),
    /// This person cannot be reached on this channel (no address, no subscription,
    /// not connected): recorded as an unsuccessful delivery, neither retried nor
    /// dead-lettered.
    #[error("{0}")]
    Unreachable(String),
}

/// One way of reaching a person.
pub trait Channel: Send + Sync {
    /// `email`, `push` or `websocket`, as the event's `channels` names it.
    fn name(&self) -> &'static str;
    /// One attempt to reach `n.user_id` with `n`.
    fn send<'a>(&'a self, n: &'a Outgoing) -> BoxFuture<'a, Result<(), ChannelError>>;
}
