//! Notifications to people: the notifier that handles `notification.send.requested`
//! ([`worker`]), the channels that reach a person behind one [`channel::Channel`]
//! trait ([`websocket`], [`email`] with its [`templates`], [`push`] with its
//! [`vapid`] key), the WebSocket they arrive on ([`ws`], with the per-process
//! [`hub`]), and their JSON ([`frames`]).
//!
//! Invariants: no channel logs or traces an address, an endpoint or a message
//! body; errors name status codes and causes, never personal data; every notification is stored before any channel is tried, keyed by
//! its event's id, so a redelivered event reaches the person once and a person who
//! was offline is replayed what they missed; the channels a process has are built
//! in one place, [`channels`].

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

pub mod channel;
pub mod email;
pub mod frames;
pub mod hub;
pub mod push;
pub mod templates;
pub mod vapid;
pub mod websocket;
pub mod worker;
pub mod ws;

pub use channel::{Channel, ChannelError, Outgoing};

/// The channels by name (`email`, `push`, `websocket`).
#[derive(Clone, Default)]
pub struct ChannelRegistry {
    channels: HashMap<&'static str, Arc<dyn Channel>>,
}

impl ChannelRegistry {
    /// Adds (or replaces) a channel under its name.
    pub fn insert(&mut self, channel: Arc<dyn Channel>) {
        self.channels.insert(channel.name(), channel);
    }

    /// The channel of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.channels.get(name)
    }
}

/// What the channels of this process are built from.
pub struct ChannelDeps<'a> {
    /// The shared Redis connection (the websocket channel publishes on it).
    pub redis: strategist_actors::Conn,
    /// The configured Redis key prefix.
    pub key_prefix: String,
    /// The settings (`[notifications.email]`, `[notifications.push]`).
    pub settings: &'a crate::config::Settings,
    /// The database (contacts, subscriptions, the VAPID key).
    pub db: crate::database::Db,
}

/// Every channel of this process; a refused email or push setting is an error
/// that names it (so `serve` stops at start instead of failing every delivery).
pub async fn channels(deps: ChannelDeps<'_>) -> Result<ChannelRegistry, String> {
    let mut r = ChannelRegistry::default();
    r.insert(Arc::new(websocket::WebsocketChannel::new(
        deps.redis.clone(),
        deps.key_prefix.clone(),
    )));
    r.insert(
        email::email_channel(deps.settings, deps.db.clone())
            .await
            .map_err(|e| format!("[notifications.email]: {e}"))?,
    );
    r.insert(
        push::push_channel(deps.settings, deps.db.clone())
            .await
            .map_err(|e| format!("[notifications.push]: {e}"))?,
    );
    Ok(r)
}

/// A channel this process cannot use: every attempt is `Unreachable` (for tests
/// and for a process built without a channel).
pub struct NotConfigured(pub &'static str);

impl Channel for NotConfigured {
    fn name(&self) -> &'static str {
        self.0
    }

    fn send<'a>(&'a self, _: &'a Outgoing) -> BoxFuture<'a, Result<(), ChannelError>> {
        let msg = format!("{} channel not configured", self.0);
        async move { Err(ChannelError::Unreachable(msg)) }.boxed()
    }
}
