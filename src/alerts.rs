//! The `system-monitor` pool: what the system says about itself, made visible to a
//! person. Each `system.error.critical` is an error log line and a
//! `notification.send.requested` to every configured admin; `system.performance.degraded`
//! a warning; `system.service.health` a debug line (a warning when not healthy).
//!
//! Invariants: an alert storm is one notification per admin per `alerts.interval_ms`
//! (the first at once, the rest of the window summed up in one more when it ends),
//! counted per process; a notification is published with an id derived from the
//! alert (or the window) so a redelivery does not send it twice; logs carry ids and
//! the alert's own text, never an event payload.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strategist_actors::{Envelope, Event, EventType, HandlerError, Pool, Publisher};

use crate::events::derived_id;
use crate::events::notification::{
    Channel, Message, NotificationPriority, NotificationSendRequested, NotificationType,
};
use crate::events::system::{
    HealthStatus, SystemErrorCritical, SystemPerformanceDegraded, SystemServiceHealth,
};

/// How long re-published notifications are recognised as the same.
const DEDUPE_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// The alert window of this process.
#[derive(Default)]
struct Window {
    /// When the last notification went out.
    sent_at: Option<Instant>,
    /// Alerts held back since then: their count and the first one's text.
    held: u32,
    first_held: Option<String>,
    /// A flush is scheduled for the end of the window.
    flush_scheduled: bool,
}

/// The system-monitor's handlers.
pub struct Alerts {
    publisher: Publisher,
    admins: Vec<String>,
    interval: Duration,
    window: Mutex<Window>,
}

impl Alerts {
    /// Alerts to `admins`, at most one notification each per `interval`.
    pub fn new(publisher: Publisher, admins: Vec<String>, interval: Duration) -> Self {
        Alerts {
            publisher: publisher.with_dedupe_window_ms(DEDUPE_WINDOW_MS),
            admins,
            interval,
            window: Mutex::new(Window::default()),
        }
    }

    /// Registers the three handlers on the `system-monitor` pool.
    pub fn register(self: &Arc<Self>, pool: &mut Pool) {
        let a = self.clone();
        pool.on(move |ev: Event<SystemErrorCritical>| {
            let a = a.clone();
            async move { a.critical(ev).await }
        });
        pool.on(|ev: Event<SystemPerformanceDegraded>| async move {
            let d = &ev.data;
            if d.recovered {
                tracing::info!(
                    metric = %d.metric_name,
                    value = d.current_value,
                    threshold = d.threshold_value,
                    "performance recovered: {} at {} (threshold {})",
                    d.metric_name,
                    d.current_value,
                    d.threshold_value
                );
            } else {
                tracing::warn!(
                    metric = %d.metric_name,
                    value = d.current_value,
                    threshold = d.threshold_value,
                    services = %d.affected_services.join(","),
                    "performance degraded: {} at {} (threshold {})",
                    d.metric_name,
                    d.current_value,
                    d.threshold_value
                );
            }
            Ok(())
        });
        pool.on(|ev: Event<SystemServiceHealth>| async move {
            let h = &ev.data;
            if h.status == HealthStatus::Healthy {
                tracing::debug!(service = %h.service_name, "service healthy");
            } else {
                tracing::warn!(
                    service = %h.service_name,
                    status = ?h.status,
                    error_rate = h.error_rate,
                    "service {} is {:?}",
                    h.service_name,
                    h.status
                );
            }
            Ok(())
        });
    }

    async fn critical(
        self: &Arc<Self>,
        ev: Event<SystemErrorCritical>,
    ) -> Result<(), HandlerError> {
        let c = &ev.data;
        tracing::error!(
            service = %c.service_name,
            error_type = %c.error_type,
            event_id = %ev.envelope.id,
            "critical: {} in {}: {}",
            c.error_type,
            c.service_name,
            c.error_message
        );
        if self.admins.is_empty() {
            return Ok(());
        }
        let text = format!(
            "{} in {}: {}",
            c.error_type, c.service_name, c.error_message
        );
        let send_now = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let open = w.sent_at.is_none_or(|t| t.elapsed() >= self.interval);
            if open {
                w.sent_at = Some(Instant::now());
                true
            } else {
                w.held += 1;
                w.first_held.get_or_insert(text.clone());
                if !w.flush_scheduled {
                    w.flush_scheduled = true;
                    let wait = self
                        .interval
                        .saturating_sub(w.sent_at.map_or(Duration::ZERO, |t| t.elapsed()));
                    let me = self.clone();
                    let cause = ev.envelope.clone();
                    actix::spawn(async move {
                        tokio::time::sleep(wait).await;
                        me.flush(&cause).await;
                    });
                }
                false
            }
        };
        if send_now {
            self.notify("Critical error", text, &ev.envelope, "alert")
                .await?;
        }
        Ok(())
    }

    /// Sends the held alerts of the window that just ended as one notification.
    async fn flush(&self, cause: &Envelope) {
        let (held, first) = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            w.flush_scheduled = false;
            w.sent_at = Some(Instant::now());
            (std::mem::take(&mut w.held), w.first_held.take())
        };
        if held == 0 {
            return;
        }
        let body = format!(
            "{held} more critical error{} in the last {} s; the first: {}",
            if held == 1 { "" } else { "s" },
            self.interval.as_secs().max(1),
            first.unwrap_or_default()
        );
        if let Err(e) = self.notify("Critical errors", body, cause, "summary").await {
            tracing::warn!(error = %e, "could not send the alert summary");
        }
    }

    async fn notify(
        &self,
        title: &str,
        body: String,
        cause: &Envelope,
        purpose: &str,
    ) -> Result<(), HandlerError> {
        for admin in &self.admins {
            let data = NotificationSendRequested {
                user_id: admin.clone(),
                notification_type: NotificationType::SystemAlert,
                channels: vec![Channel::Websocket, Channel::Email],
                message: Message {
                    title: title.to_string(),
                    body: body.clone(),
                    action_url: None,
                },
                priority: NotificationPriority::Critical,
            };
            let mut env = Envelope::new(
                NotificationSendRequested::TYPE,
                NotificationSendRequested::VERSION,
                serde_json::to_value(&data).map_err(HandlerError::permanent)?,
            )
            .caused_by(cause)
            .with_user(admin);
            env.id = derived_id(cause, &format!("{purpose}:{admin}"));
            self.publisher
                .publish(NotificationSendRequested::STREAM, &env)
                .await
                .map_err(HandlerError::retryable)?;
        }
        Ok(())
    }
}
