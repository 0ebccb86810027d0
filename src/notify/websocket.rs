//! The `websocket` channel: PUBLISHes a notification's frame on its user's pub/sub
//! channel, where the hub of every `serve` process holding a socket of that user
//! picks it up (see [`super::hub`]).
//!
//! A receiver count of 0 means the person has no socket open anywhere: that is
//! `Unreachable`, not a failure to retry; the notification is stored, so it is
//! replayed when they connect.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use strategist_actors::Conn;

use super::channel::{Channel, ChannelError, Outgoing};
use super::frames::{NotificationView, ServerFrame};
use super::hub;

/// What an offline person's attempt records.
pub const OFFLINE: &str = "offline; kept for replay";

/// Delivers to open sockets through Redis pub/sub.
pub struct WebsocketChannel {
    conn: Conn,
    key_prefix: String,
}

impl WebsocketChannel {
    /// Publishes on the shared connection; `key_prefix` is the configured Redis key
    /// prefix (the hubs use the same).
    pub fn new(conn: Conn, key_prefix: impl Into<String>) -> Self {
        WebsocketChannel {
            conn,
            key_prefix: key_prefix.into(),
        }
    }
}

impl Channel for WebsocketChannel {
    fn name(&self) -> &'static str {
        "websocket"
    }

    fn send<'a>(&'a self, n: &'a Outgoing) -> BoxFuture<'a, Result<(), ChannelError>> {
        async move {
            let view = NotificationView::from(n);
            let frame = ServerFrame::Notification {
                notification: &view,
            }
            .text();
            let mut conn = self.conn.clone();
            let receivers: i64 = redis::cmd("PUBLISH")
                .arg(hub::user_channel(&self.key_prefix, &n.user_id))
                .arg(hub::payload(&n.id, &frame))
                .query_async(&mut conn)
                .await
                .map_err(|e| ChannelError::Transient(format!("redis: {e}")))?;
            if receivers == 0 {
                return Err(ChannelError::Unreachable(OFFLINE.into()));
            }
            Ok(())
        }
        .boxed()
    }
}
