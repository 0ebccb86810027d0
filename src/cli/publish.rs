//! `strategist publish`: validates and publishes one event, prints its id.

use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;
use strategist_actors::Envelope;

use crate::config::Settings;
use crate::{events, redis_conn};

/// The arguments of one publish.
pub struct PublishArgs {
    /// Target stream.
    pub stream: String,
    /// Event type.
    pub event_type: String,
    /// Payload, JSON text.
    pub data: String,
    /// Optional user id.
    pub user_id: Option<String>,
    /// Optional correlation id.
    pub correlation_id: Option<String>,
}

/// Publishes and returns the event id and entry id.
pub async fn run(settings: &Settings, a: PublishArgs) -> anyhow::Result<(String, String)> {
    let data: Value = serde_json::from_str(&a.data).context("--data is not valid JSON")?;
    anyhow::ensure!(data.is_object(), "--data must be a JSON object");
    let catalog = Arc::new(events::catalog());
    let version = catalog
        .get(&a.event_type)
        .map(|t| t.version)
        .with_context(|| format!("unknown event type `{}`", a.event_type))?;
    let mut env = Envelope::new(a.event_type, version, data);
    env.user_id = a.user_id;
    env.correlation_id = a.correlation_id;
    // Check before connecting, so a bad event never waits on Redis.
    catalog.check_publish(&a.stream, &env)?;
    let (_, conn) = redis_conn::connect(&settings.redis).await?;
    let keys = settings.keys()?;
    let publisher = redis_conn::publisher(&settings.redis, conn, &keys, &catalog)
        .await?
        .with_dedupe_window_ms(settings.publish.dedupe_window_ms);
    let p = publisher.publish(&a.stream, &env).await?;
    Ok((p.event_id.to_string(), p.entry_id))
}
