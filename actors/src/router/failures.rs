//! Failed attempts: a retry written to the group's schedule (the entry stays
//! pending, so the retry survives a crash), or a dead letter written and acked in
//! one script by the entry's owner, then told to the application's hook under a
//! panic guard.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix::prelude::*;

use super::Router;
use crate::dead_letters::letter_fields;
use crate::envelope::Envelope;
use crate::hooks::{DeadLetter, DeadLetterReason};
use crate::metrics::OTHER_TYPE;
use crate::redis_io::Entry;
use crate::stats::RouteStats;
use crate::worker::panic_message;

impl Router {
    /// Leaves the entry pending and writes when it runs again.
    pub(super) fn schedule_retry(
        &mut self,
        entry: Entry,
        source: usize,
        delay: Duration,
        ctx: &mut Context<Self>,
    ) {
        tracing::info!(
            router = %self.route.part, entry = %entry.id, attempt = entry.deliveries,
            retry_in_ms = delay.as_millis() as u64, "attempt failed; retrying later"
        );
        RouteStats::add(&self.route.stats.retried, 1);
        let due = due_ms(chrono::Utc::now(), delay);
        self.ops += 1;
        let fut = self.backend.clone().retry_at(source, entry.id, due);
        ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, _| {
            act.ops -= 1;
            if let Err(e) = res {
                // The entry stays pending; it is claimed again once it looks stale.
                tracing::warn!(router = %act.route.part, error = %e, "could not schedule a retry");
            }
            act.maybe_finish_drain();
        }));
    }

    /// Moves an entry of `source` to `{stream}.dlq` and acks it, atomically, as
    /// worker `owner`'s consumer (which must own it).
    pub(super) fn dead_letter(
        &mut self,
        entry: Entry,
        (source, owner): (usize, usize),
        reason: DeadLetterReason,
        error: String,
        envelope: Option<Envelope>,
        ctx: &mut Context<Self>,
    ) {
        tracing::warn!(router = %self.route.part, entry = %entry.id, %reason, error = %error, "dead-lettering entry");
        let group = &self.backend.keys.group;
        let letter = letter_fields(reason, &error, group, entry.deliveries, &entry.id);
        self.ops += 1;
        let backend = self.backend.clone();
        let fut = async move {
            let res = backend.dead_letter(source, owner, &entry, &letter).await;
            (res, entry)
        };
        ctx.spawn(actix::fut::wrap_future(fut).map(move |(res, entry), act: &mut Self, _| {
            act.ops -= 1;
            match res {
                Ok(Some(dlq_id)) => {
                    RouteStats::add(&act.route.stats.dead_lettered, 1);
                    RouteStats::add(&act.route.stats.acked, 1);
                    let envelope = envelope.or_else(|| Envelope::from_pairs(entry.pairs()).ok());
                    // A type this route neither handles nor measures already (say,
                    // garbage from the wire) is counted under `other`.
                    let metrics = &act.route.metrics;
                    let event_type = envelope
                        .as_ref()
                        .map(|e| e.event_type.as_str())
                        .filter(|t| act.route.handlers.contains_key(*t) || metrics.tracks(t))
                        .unwrap_or(OTHER_TYPE);
                    metrics.record_dead_letter(event_type);
                    let letter = DeadLetter {
                        stream: act.route.stream.clone(),
                        partition: act.route.partition,
                        group: act.backend.keys.group.clone(),
                        original_id: entry.id,
                        dlq_id,
                        reason,
                        error,
                        attempts: entry.deliveries,
                        envelope,
                    };
                    let hooks = &act.route.hooks;
                    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| hooks.dead_letter(&letter))) {
                        tracing::error!(router = %act.route.part, error = %panic_message(p.as_ref()), "the dead-letter hook panicked");
                    }
                }
                Ok(None) => {
                    tracing::info!(router = %act.route.part, entry = %entry.id, "entry is not pending for this consumer; not dead-lettered (done already, or another consumer owns it)");
                }
                Err(e) => {
                    // Still pending: it is claimed again once stale and ends here again.
                    tracing::warn!(router = %act.route.part, error = %e, "could not dead-letter entry");
                }
            }
            act.maybe_finish_drain();
        }));
    }
}

/// When a retry `delay` after `now` is due, in whole milliseconds rounded up: the
/// schedule is read against the clock truncated to milliseconds, so a due time
/// rounded down would let a retry run up to 1 ms before its delay has passed.
fn due_ms(now: chrono::DateTime<chrono::Utc>, delay: Duration) -> i64 {
    let micros = now
        .timestamp_micros()
        .saturating_add(delay.as_micros() as i64);
    micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_never_due_before_its_delay() {
        let at = |us: i64| chrono::DateTime::from_timestamp_micros(us).unwrap();
        // 1000.9 ms + 300 ms is due at 1301 ms, not 1300.
        assert_eq!(due_ms(at(1_000_900), Duration::from_millis(300)), 1301);
        assert_eq!(due_ms(at(1_000_000), Duration::from_millis(300)), 1300);
        assert_eq!(due_ms(at(1_000_001), Duration::ZERO), 1001);
    }
}
