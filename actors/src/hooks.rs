//! Hooks through which the application hears of what the engine decided on its own:
//! an entry dead-lettered, a worker in a crash loop. The engine calls them
//! synchronously from its actors, so a hook must return at once (spawn any I/O).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::handler::Delivery;
use crate::retention::RetentionReport;

/// Why an entry went to the dead letters: the contract's `dlq_reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The handler failed on its last attempt, or failed permanently.
    HandlerFailed,
    /// The entry is not a valid event (missing field, bad JSON, payload off schema).
    InvalidEvent,
    /// The event's version has no upcaster to the current one.
    UnknownVersion,
    /// The entry was delivered more often than allowed.
    MaxDeliveries,
    /// The handler panicked on its last attempt.
    Panicked,
    /// The handler ran past its timeout on its last attempt.
    Timeout,
}

impl DeadLetterReason {
    /// The wire value (`handler_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::HandlerFailed => "handler_failed",
            DeadLetterReason::InvalidEvent => "invalid_event",
            DeadLetterReason::UnknownVersion => "unknown_version",
            DeadLetterReason::MaxDeliveries => "max_deliveries",
            DeadLetterReason::Panicked => "panicked",
            DeadLetterReason::Timeout => "timeout",
        }
    }

    /// Parses a wire value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "handler_failed" => DeadLetterReason::HandlerFailed,
            "invalid_event" => DeadLetterReason::InvalidEvent,
            "unknown_version" => DeadLetterReason::UnknownVersion,
            "max_deliveries" => DeadLetterReason::MaxDeliveries,
            "panicked" => DeadLetterReason::Panicked,
            "timeout" => DeadLetterReason::Timeout,
            _ => return None,
        })
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry that has just been moved to a dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The stream it came from (without prefix).
    pub stream: String,
    /// The group that gave up on it.
    pub group: String,
    /// Its id in the original stream.
    pub original_id: String,
    /// Its id in the dead-letter stream.
    pub dlq_id: String,
    /// Why.
    pub reason: DeadLetterReason,
    /// The last error, readable.
    pub error: String,
    /// Deliveries it had.
    pub attempts: u32,
    /// The event, when the entry decoded as one.
    pub envelope: Option<Envelope>,
}

type DeadLetterHook = Arc<dyn Fn(&DeadLetter) + Send + Sync>;
type CrashLoopHook = Arc<dyn Fn(&str, u32) + Send + Sync>;
type RetentionHook = Arc<dyn Fn(&RetentionReport) + Send + Sync>;
type RouterDiedHook = Arc<dyn Fn(&str) + Send + Sync>;
type SpanHook = Arc<dyn Fn(&Delivery, &str) -> tracing::Span + Send + Sync>;

/// The application's hooks. All optional.
#[derive(Clone, Default)]
pub struct Hooks {
    on_dead_letter: Option<DeadLetterHook>,
    on_crash_loop: Option<CrashLoopHook>,
    on_retention: Option<RetentionHook>,
    on_router_died: Option<RouterDiedHook>,
    span: Option<SpanHook>,
}

impl Hooks {
    /// Called after an entry is dead-lettered (the design's `handleDeadLetter`).
    pub fn on_dead_letter(mut self, f: impl Fn(&DeadLetter) + Send + Sync + 'static) -> Self {
        self.on_dead_letter = Some(Arc::new(f));
        self
    }

    /// Called when a worker exceeds its restart budget, with the worker's name and
    /// the restarts counted in the window.
    pub fn on_crash_loop(mut self, f: impl Fn(&str, u32) + Send + Sync + 'static) -> Self {
        self.on_crash_loop = Some(Arc::new(f));
        self
    }

    /// Called when a router died (a bug in the engine: a panic outside every
    /// guard), with its name, before it is started again.
    pub fn on_router_died(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_router_died = Some(Arc::new(f));
        self
    }

    /// Called when retention is held back by a lagging group or the hard cap cut
    /// past one.
    pub fn on_retention(mut self, f: impl Fn(&RetentionReport) + Send + Sync + 'static) -> Self {
        self.on_retention = Some(Arc::new(f));
        self
    }

    /// Makes the span each handler call runs in, given the delivery and the group
    /// (the application links it to the entry's `traceparent`). Without it, a plain
    /// `handle` span is used.
    pub fn with_span(
        mut self,
        f: impl Fn(&Delivery, &str) -> tracing::Span + Send + Sync + 'static,
    ) -> Self {
        self.span = Some(Arc::new(f));
        self
    }

    pub(crate) fn span(&self, d: &Delivery, group: &str) -> tracing::Span {
        match &self.span {
            Some(f) => f(d, group),
            None => tracing::info_span!(
                "handle",
                event_type = %d.envelope.event_type,
                event_id = %d.envelope.id,
                group,
                attempt = d.attempt
            ),
        }
    }

    pub(crate) fn retention(&self, r: &RetentionReport) {
        if let Some(f) = &self.on_retention {
            f(r);
        }
    }

    pub(crate) fn dead_letter(&self, d: &DeadLetter) {
        if let Some(f) = &self.on_dead_letter {
            f(d);
        }
    }

    pub(crate) fn router_died(&self, part: &str) {
        if let Some(f) = &self.on_router_died {
            f(part);
        }
    }

    pub(crate) fn crash_loop(&self, part: &str, restarts: u32) {
        if let Some(f) = &self.on_crash_loop {
            f(part, restarts);
        }
    }
}
