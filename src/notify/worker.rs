//! The `notifier` pool's handler: `notification.send.requested` -> the stored
//! notification, one attempt per channel it names, and one `notification.delivered`
//! per attempt.
//!
//! Calls are gathered into batches (`Handler::batch`) and each batch is delivered in
//! priority order (critical, high, normal, low; stream order within a priority), so
//! when a backlog builds, critical notifications go out before low ones that were
//! requested earlier. (Only what the router has read can be reordered: a backlog
//! longer than the pool's in-flight window is reordered window by window.)
//!
//! Invariants:
//! - the notification is stored (by its event id) before any channel is tried;
//! - a channel is tried again only while it owes an attempt: after a success, a
//!   permanent failure or `Unreachable` it is settled for that notification, so a
//!   redelivery tries only the channels still owed and the person is reached once;
//! - the channels of one notification are tried side by side: a slow or failing
//!   channel neither blocks nor repeats the others; a transient failure makes the
//!   handler's result retryable after every channel was tried;
//! - each attempt is recorded, then published as `notification.delivered` under an
//!   id derived from (notification, channel, attempt) through a de-duplicating
//!   publisher: a repeat is dropped by Redis;
//! - logs carry ids, channels and outcomes, never a title, body or address.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strategist_actors::{Delivery, Envelope, EventType, Handler, HandlerError, Pool, Publisher};

use super::ChannelRegistry;
use super::channel::{ChannelError, Outgoing};
use crate::database::{self, Db};
use crate::events::derived_id;
use crate::events::notification::{
    NotificationDelivered, NotificationPriority, NotificationSendRequested,
};
use crate::store::Store;
use crate::store::entities::{notification, notification_delivery};
use crate::store::notifications::{DELIVERED, PERMANENT, TRANSIENT, UNREACHABLE};

/// How long re-published `notification.delivered` events are recognised as the same.
const DEDUPE_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// The notifier's settings.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// Most notifications in one batch.
    pub batch_max: usize,
    /// How long a batch waits to fill.
    pub batch_linger: Duration,
    /// Longest attempt on one channel.
    pub channel_timeout: Duration,
}

/// The notifier's handler and what it needs.
pub struct Notifier {
    db: Db,
    publisher: Publisher,
    channels: ChannelRegistry,
    options: NotifierOptions,
}

/// One request of a batch.
struct Item {
    /// Its place in the batch (results are answered in batch order).
    idx: usize,
    env: Envelope,
    data: NotificationSendRequested,
    /// The engine's delivery count: above 1 this is a redelivery.
    attempt: u32,
}

/// What is known of one (notification, channel): its last attempt and whether it
/// is settled (nothing more owed).
type Past = HashMap<(String, String), (i32, bool)>;

/// The order a backlog is delivered in: lower first.
fn rank(p: NotificationPriority) -> u8 {
    match p {
        NotificationPriority::Critical => 0,
        NotificationPriority::High => 1,
        NotificationPriority::Normal => 2,
        NotificationPriority::Low => 3,
    }
}

/// An enum's snake_case name, as serde writes it.
fn name_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl Notifier {
    /// A notifier that delivers through `channels`.
    pub fn new(
        db: Db,
        publisher: Publisher,
        channels: ChannelRegistry,
        options: NotifierOptions,
    ) -> Self {
        Notifier {
            db,
            publisher: publisher.with_dedupe_window_ms(DEDUPE_WINDOW_MS),
            channels,
            options,
        }
    }

    /// Registers the batch handler of `notification.send.requested` on `pool`.
    pub fn register(self: &Arc<Self>, pool: &mut Pool) {
        let me = self.clone();
        let handler = Handler::batch(
            self.options.batch_max,
            self.options.batch_linger,
            move |batch: Vec<Delivery>| {
                let me = me.clone();
                async move { me.handle_batch(batch).await }
            },
        );
        pool.handle(
            NotificationSendRequested::STREAM,
            NotificationSendRequested::TYPE,
            handler,
        );
    }

    /// Handles one batch: one result per delivery, in batch order.
    pub async fn handle_batch(&self, batch: Vec<Delivery>) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = vec![Ok(()); batch.len()];
        let mut items = Vec::with_capacity(batch.len());
        for (idx, d) in batch.into_iter().enumerate() {
            match serde_json::from_value::<NotificationSendRequested>(d.envelope.data.clone()) {
                Ok(data) => items.push(Item {
                    idx,
                    env: d.envelope,
                    data,
                    attempt: d.attempt,
                }),
                Err(e) => {
                    results[idx] = Err(HandlerError::permanent(format!(
                        "payload does not decode as {}: {e}",
                        NotificationSendRequested::TYPE
                    )));
                }
            }
        }
        let fail_all =
            |results: &mut Vec<Result<(), HandlerError>>, items: &[Item], e: HandlerError| {
                for it in items {
                    results[it.idx] = Err(e.clone());
                }
            };
        let store = match self.db.get() {
            Ok(s) => s,
            Err(e) => {
                fail_all(&mut results, &items, e);
                return results;
            }
        };
        let rows: Vec<notification::Model> = items.iter().map(row_of).collect();
        if let Err(e) = store.save_notifications(&rows).await {
            fail_all(&mut results, &items, database::retry(e));
            return results;
        }
        let ids: Vec<String> = items.iter().map(|it| it.env.id.to_string()).collect();
        let earlier = match store.deliveries(&ids).await {
            Ok(d) => d,
            Err(e) => {
                fail_all(&mut results, &items, database::retry(e));
                return results;
            }
        };
        let mut past = Past::new();
        let mut earlier_by_id: HashMap<String, Vec<notification_delivery::Model>> = HashMap::new();
        for d in earlier {
            let settled = d.outcome != TRANSIENT;
            let e = past
                .entry((d.notification_id.clone(), d.channel.clone()))
                .or_insert((0, false));
            e.0 = e.0.max(d.attempt);
            e.1 |= settled;
            earlier_by_id
                .entry(d.notification_id.clone())
                .or_default()
                .push(d);
        }
        items.sort_by_key(|it| (rank(it.data.priority), it.idx));
        for it in &items {
            results[it.idx] = self
                .deliver(
                    store,
                    it,
                    &mut past,
                    earlier_by_id.get(&it.env.id.to_string()),
                )
                .await;
        }
        results
    }

    /// Tries every channel still owed for one notification, records and publishes
    /// each attempt.
    async fn deliver(
        &self,
        store: &Store,
        it: &Item,
        past: &mut Past,
        earlier: Option<&Vec<notification_delivery::Model>>,
    ) -> Result<(), HandlerError> {
        let out = outgoing_of(it);
        let mut owed: Vec<(String, i32)> = Vec::new();
        for ch in &it.data.channels {
            let ch = name_of(ch);
            if owed.iter().any(|(c, _)| *c == ch) {
                continue;
            }
            let (last, settled) = past
                .get(&(out.id.clone(), ch.clone()))
                .copied()
                .unwrap_or((0, false));
            if !settled {
                owed.push((ch, last + 1));
            }
        }
        let attempts = futures_util::future::join_all(
            owed.iter()
                .map(|(ch, attempt)| self.attempt(ch, *attempt, &out)),
        )
        .await;
        // A redelivery may follow a crash between recording an attempt and
        // publishing it: publish what was recorded again (Redis drops repeats).
        if it.attempt > 1 {
            for d in earlier.into_iter().flatten() {
                self.publish(&it.env, d).await?;
            }
        }
        let mut transient = Vec::new();
        for d in attempts {
            store.record_delivery(&d).await.map_err(database::retry)?;
            past.insert(
                (d.notification_id.clone(), d.channel.clone()),
                (d.attempt, d.outcome != TRANSIENT),
            );
            tracing::debug!(
                notification_id = %d.notification_id,
                channel = %d.channel,
                attempt = d.attempt,
                outcome = %d.outcome,
                "notification attempt"
            );
            if d.outcome == TRANSIENT || d.outcome == PERMANENT {
                tracing::warn!(
                    notification_id = %d.notification_id,
                    channel = %d.channel,
                    attempt = d.attempt,
                    outcome = %d.outcome,
                    "a notification channel failed (the error is in notification.delivered)"
                );
            }
            self.publish(&it.env, &d).await?;
            if d.outcome == TRANSIENT {
                transient.push(d.channel.clone());
            }
        }
        if transient.is_empty() {
            Ok(())
        } else {
            Err(HandlerError::retryable(format!(
                "channel {} failed; only it is tried again",
                transient.join(", ")
            )))
        }
    }

    /// One attempt on one channel, timed.
    async fn attempt(
        &self,
        channel: &str,
        attempt: i32,
        out: &Outgoing,
    ) -> notification_delivery::Model {
        let started = Instant::now();
        let result = match self.channels.get(channel) {
            Some(c) => {
                match tokio::time::timeout(self.options.channel_timeout, c.send(out)).await {
                    Ok(r) => r,
                    Err(_) => Err(ChannelError::Transient(format!(
                        "no answer within {} ms",
                        self.options.channel_timeout.as_millis()
                    ))),
                }
            }
            None => Err(ChannelError::Permanent(format!("no channel {channel:?}"))),
        };
        let (outcome, error) = match result {
            Ok(()) => (DELIVERED, None),
            Err(ChannelError::Transient(e)) => (TRANSIENT, Some(e)),
            Err(ChannelError::Permanent(e)) => (PERMANENT, Some(e)),
            Err(ChannelError::Unreachable(e)) => (UNREACHABLE, Some(e)),
        };
        notification_delivery::Model {
            notification_id: out.id.clone(),
            channel: channel.to_owned(),
            attempt,
            success: outcome == DELIVERED,
            outcome: outcome.to_owned(),
            error,
            delivery_time_ms: started.elapsed().as_secs_f64() * 1000.0,
            at: super::frames::now_rfc3339(),
        }
    }

    /// `notification.delivered` for one recorded attempt.
    async fn publish(
        &self,
        cause: &Envelope,
        d: &notification_delivery::Model,
    ) -> Result<(), HandlerError> {
        let data = NotificationDelivered {
            notification_id: d.notification_id.clone(),
            user_id: user_of(cause),
            channel: d.channel.clone(),
            delivery_time_ms: d.delivery_time_ms,
            success: d.success,
            error: d.error.clone(),
        };
        let mut env = Envelope::new(
            NotificationDelivered::TYPE,
            NotificationDelivered::VERSION,
            serde_json::to_value(&data).map_err(HandlerError::permanent)?,
        )
        .caused_by(cause)
        .with_user(data.user_id.clone());
        env.id = derived_id(cause, &format!("delivered:{}:{}", d.channel, d.attempt));
        self.publisher
            .publish(NotificationDelivered::STREAM, &env)
            .await
            .map_err(HandlerError::retryable)?;
        Ok(())
    }
}

fn user_of(env: &Envelope) -> String {
    env.data
        .get("user_id")
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn created_at(env: &Envelope) -> String {
    env.timestamp
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn row_of(it: &Item) -> notification::Model {
    notification::Model {
        id: it.env.id.to_string(),
        user_id: it.data.user_id.clone(),
        notification_type: name_of(&it.data.notification_type),
        title: it.data.message.title.clone(),
        body: it.data.message.body.clone(),
        action_url: it.data.message.action_url.clone(),
        priority: name_of(&it.data.priority),
        created_at: created_at(&it.env),
        delivered_at: None,
        read_at: None,
    }
}

fn outgoing_of(it: &Item) -> Outgoing {
    let r = row_of(it);
    Outgoing {
        id: r.id,
        user_id: r.user_id,
        notification_type: r.notification_type,
        title: r.title,
        body: r.body,
        action_url: r.action_url,
        priority: r.priority,
        created_at: r.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_ranks_before_low() {
        let mut ps = [
            NotificationPriority::Low,
            NotificationPriority::Critical,
            NotificationPriority::Normal,
            NotificationPriority::High,
        ];
        ps.sort_by_key(|p| rank(*p));
        assert_eq!(
            ps,
            [
                NotificationPriority::Critical,
                NotificationPriority::High,
                NotificationPriority::Normal,
                NotificationPriority::Low
            ]
        );
        assert_eq!(name_of(&NotificationPriority::Critical), "critical");
    }
}
