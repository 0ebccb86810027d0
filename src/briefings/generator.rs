//! The `briefing-generator` pool's worker: writes the briefing of one
//! `briefing.generation.scheduled` (top signal, trends with confidence, competitor
//! moves, notable items with links, suggested actions) through the default AI
//! provider, stores it, and publishes `notification.send.requested`
//! (`briefing_ready`, WebSocket and email, `action_url` `/briefings/{id}`).
//!
//! Invariant: once per user and period. A redelivery finds the stored briefing and
//! only republishes its notification under the same event id (the briefing's id),
//! which the publisher's dedupe window drops if it went out already.

use std::sync::Arc;

use serde_json::json;
use strategist_actors::{Envelope, Event, EventType, HandlerError, Pool, Publisher};

use super::market::{MarketData, Snapshot};
use super::period_name;
use crate::ai::Providers;
use crate::ai::provider::Prompt;
use crate::database::{Db, retry};
use crate::events::notification::{
    BriefingGenerationScheduled, Channel, Message, NotificationPriority, NotificationSendRequested,
    NotificationType,
};
use crate::store::entities::briefing;

/// Writes briefings.
pub struct BriefingGenerator {
    db: Db,
    publisher: Publisher,
    providers: Arc<Providers>,
    market: Arc<dyn MarketData>,
}

impl BriefingGenerator {
    /// The worker.
    pub fn new(
        db: Db,
        publisher: Publisher,
        providers: Arc<Providers>,
        market: Arc<dyn MarketData>,
    ) -> Self {
        BriefingGenerator {
            db,
            publisher,
            providers,
            market,
        }
    }

    /// Registers the handler on the `briefing-generator` pool.
    pub fn register(self: &Arc<Self>, pool: &mut Pool) {
        let w = self.clone();
        pool.on(move |ev: Event<BriefingGenerationScheduled>| {
            let w = w.clone();
            async move { w.generate(ev).await }
        });
    }

    async fn generate(&self, ev: Event<BriefingGenerationScheduled>) -> Result<(), HandlerError> {
        let store = self.db.get()?;
        let req = &ev.data;
        let period = period_name(req.briefing_period);
        let market = self
            .market
            .snapshot(&req.user_id, req.period_start, req.period_end)
            .await
            .map_err(HandlerError::retryable)?;
        let provider = self.providers.choose("").map_err(HandlerError::permanent)?;
        let prompt = prompt(req, &market);
        let generation = provider.generate(&prompt).await.map_err(|e| match e {
            crate::ai::provider::ProviderError::Retryable { message, .. } => {
                HandlerError::retryable(message)
            }
            crate::ai::provider::ProviderError::Permanent(m) => HandlerError::permanent(m),
        })?;
        let content = sections(&market, &generation.text);
        let row = briefing::Model {
            id: ulid::Ulid::generate().to_string(),
            user_id: req.user_id.clone(),
            period: period.to_owned(),
            period_start_ms: req.period_start.timestamp_millis(),
            period_end_ms: req.period_end.timestamp_millis(),
            contextual_core_id: req.contextual_core_id.clone(),
            content: content.to_string(),
            model_used: generation.model,
            scheduled_event_id: ev.envelope.id.to_string(),
            created_at_ms: chrono::Utc::now().timestamp_millis(),
            notified_at_ms: None,
        };
        let stored = store.save_briefing(row).await.map_err(retry)?;
        self.notify(&stored, &ev.envelope).await?;
        if stored.notified_at_ms.is_none() {
            store
                .briefing_notified(&stored.id, chrono::Utc::now().timestamp_millis())
                .await
                .map_err(retry)?;
        }
        tracing::info!(briefing_id = %stored.id, period, "briefing stored");
        Ok(())
    }

    async fn notify(&self, b: &briefing::Model, cause: &Envelope) -> Result<(), HandlerError> {
        let data = NotificationSendRequested {
            user_id: b.user_id.clone(),
            notification_type: NotificationType::BriefingReady,
            channels: vec![Channel::Websocket, Channel::Email],
            message: Message {
                title: format!("Your {} briefing is ready", b.period),
                body: top_signal_of(&b.content),
                action_url: Some(format!("/briefings/{}", b.id)),
            },
            priority: NotificationPriority::Normal,
        };
        let mut env = Envelope::new(
            NotificationSendRequested::TYPE,
            NotificationSendRequested::VERSION,
            serde_json::to_value(&data).map_err(HandlerError::permanent)?,
        )
        .caused_by(cause)
        .with_user(b.user_id.clone());
        if let Ok(id) = b.id.parse::<ulid::Ulid>() {
            env.id = id;
        }
        self.publisher
            .publish(NotificationSendRequested::STREAM, &env)
            .await
            .map(|_| ())
            .map_err(HandlerError::retryable)
    }
}

fn top_signal_of(content: &str) -> String {
    serde_json::from_str::<serde_json::Value>(content)
        .ok()
        .and_then(|v| v["top_signal"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The top signal: the most confident non-stable trend, else the first competitor
/// move, else a plain statement that nothing was collected.
pub fn top_signal(m: &Snapshot) -> String {
    if let Some(t) = m
        .trends
        .iter()
        .filter(|t| t.direction != "stable")
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
    {
        return format!(
            "\"{}\" is {} (confidence {:.0}%)",
            t.keyword,
            t.direction,
            t.confidence * 100.0
        );
    }
    if let Some(c) = m.competitor_moves.first() {
        return format!("{}: {}", c.competitor, c.summary);
    }
    "No market data was collected for this period.".to_owned()
}

/// Suggested actions derived from the data (the model's text comes beside them).
pub fn suggested_actions(m: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for t in m.trends.iter().take(3) {
        match t.direction.as_str() {
            "rising" => out.push(format!(
                "Publish about \"{}\" while interest rises",
                t.keyword
            )),
            "declining" => out.push(format!("Review your reliance on \"{}\"", t.keyword)),
            _ => {}
        }
    }
    if let Some(c) = m.competitor_moves.first() {
        out.push(format!("Look at {}'s latest move", c.competitor));
    }
    if out.is_empty() {
        out.push("Add keywords, competitors or sources to track".to_owned());
    }
    out
}

fn prompt(req: &BriefingGenerationScheduled, m: &Snapshot) -> Prompt {
    let mut context = Vec::new();
    for t in &m.trends {
        context.push(format!(
            "Trend: {} is {} with confidence {:.2}.",
            t.keyword, t.direction, t.confidence
        ));
    }
    for c in &m.competitor_moves {
        context.push(format!("Competitor {}: {}.", c.competitor, c.summary));
    }
    for i in &m.items {
        context.push(format!("Item: {} ({}).", i.title, i.url));
    }
    Prompt {
        system: "You write a short market briefing: the top signal, trends with their \
                 confidence, competitor moves, notable items with links, suggested actions."
            .to_owned(),
        user: format!(
            "Market briefing for {} to {}. Top signal: {}",
            req.period_start.format("%Y-%m-%d"),
            req.period_end.format("%Y-%m-%d"),
            top_signal(m)
        ),
        context,
        max_tokens: 800,
    }
}

/// The stored sections.
pub fn sections(m: &Snapshot, text: &str) -> serde_json::Value {
    json!({
        "top_signal": top_signal(m),
        "trends": m.trends,
        "competitor_moves": m.competitor_moves,
        "notable_items": m.items,
        "suggested_actions": suggested_actions(m),
        "text": text,
    })
}
