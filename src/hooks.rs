//! The application's reactions to what the engine decides alone: dead letters of
//! critical types, crash loops and routers that died publish `system.error.critical`; a lagging group
//! or a forced trim publishes `system.performance.degraded`.
//!
//! Hooks are called from actor threads and must return at once, so each publish is
//! spawned. Events about people carry personal data: nothing here logs payloads.

use strategist_actors::{DeadLetter, Hooks, Publisher, RetentionReport};

use crate::events::system::{SystemErrorCritical, SystemPerformanceDegraded};

/// What else happens when an entry is dead-lettered (e.g. a request that will now
/// never be answered is marked failed).
pub type OnDeadLetter = std::sync::Arc<dyn Fn(&DeadLetter) + Send + Sync>;

/// The hooks of `serve`.
pub fn build(
    publisher: Publisher,
    critical_types: Vec<String>,
    also: Option<OnDeadLetter>,
) -> Hooks {
    let (p1, p2, p4) = (publisher.clone(), publisher.clone(), publisher.clone());
    let p3 = publisher;
    Hooks::default()
        .on_dead_letter(move |d| {
            if let Some(f) = &also {
                f(d);
            }
            tracing::warn!(
                stream = %d.stream, group = %d.group, entry = %d.original_id,
                reason = %d.reason, attempts = d.attempts, "dead letter"
            );
            let event_type = d.envelope.as_ref().map(|e| e.event_type.clone());
            let critical = event_type
                .as_deref()
                .is_some_and(|t| !t.starts_with("system.") && critical_types.iter().any(|c| c == t));
            if critical {
                let ev = SystemErrorCritical {
                    service_name: d.group.clone(),
                    error_type: format!("dead_letter.{}", d.reason),
                    error_message: format!(
                        "{} {} dead-lettered after {} attempts: {}",
                        event_type.unwrap_or_default(),
                        d.original_id,
                        d.attempts,
                        d.error
                    ),
                    stack_trace: String::new(),
                    user_id: d.envelope.as_ref().and_then(|e| e.user_id.clone()),
                    request_id: d.envelope.as_ref().map(|e| e.id.to_string()),
                    requires_immediate_attention: true,
                };
                let cause = d.envelope.clone();
                spawn_publish(&p1, ev, cause);
            }
        })
        .on_crash_loop(move |part, restarts| {
            let ev = SystemErrorCritical {
                service_name: "strategist".into(),
                error_type: "crash_loop".into(),
                error_message: format!("{part} restarted {restarts} times within its window"),
                stack_trace: String::new(),
                user_id: None,
                request_id: None,
                requires_immediate_attention: true,
            };
            spawn_publish(&p2, ev, None);
        })
        .on_router_died(move |part| {
            let ev = SystemErrorCritical {
                service_name: "strategist".into(),
                error_type: "router_died".into(),
                error_message: format!("{part} died and was started again"),
                stack_trace: String::new(),
                user_id: None,
                request_id: None,
                requires_immediate_attention: true,
            };
            spawn_publish(&p4, ev, None);
        })
        .on_retention(move |r| {
            let ev = match r {
                RetentionReport::Lagging {
                    stream,
                    group,
                    needed_id,
                    lag,
                } => SystemPerformanceDegraded {
                    metric_name: format!("consumer_lag.{stream}.{group}"),
                    current_value: *lag as f64,
                    threshold_value: 0.0,
                    affected_services: vec![group.clone()],
                    suggested_actions: vec![
                        format!("group `{group}` still needs {needed_id} on {stream}, so retention cannot trim"),
                        format!("add workers or processes to `{group}`, or find why it stopped"),
                    ],
                    recovered: false,
                },
                RetentionReport::ForcedTrim {
                    stream,
                    removed,
                    groups,
                } => SystemPerformanceDegraded {
                    metric_name: format!("forced_trim.{stream}"),
                    current_value: *removed as f64,
                    threshold_value: 0.0,
                    affected_services: groups.clone(),
                    suggested_actions: vec![
                        format!("the hard cap of {stream} removed {removed} entries that {groups:?} had not finished"),
                        "raise hard_cap or scale the lagging groups".into(),
                    ],
                    recovered: false,
                },
            };
            spawn_publish(&p3, ev, None);
        })
}

fn spawn_publish<T: strategist_actors::EventType + Send + 'static>(
    publisher: &Publisher,
    ev: T,
    cause: Option<strategist_actors::Envelope>,
) {
    let publisher = publisher.clone();
    actix::spawn(async move {
        let res = publisher
            .publish_typed(&ev, |e| match &cause {
                Some(c) => e.caused_by(c),
                None => e,
            })
            .await;
        if let Err(e) = res {
            tracing::error!(event_type = T::TYPE, error = %e, "could not publish");
        }
    });
}
