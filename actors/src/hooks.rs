//! Hooks through which the application hears of what the engine decided on its own:
//! an entry dead-lettered, a worker in a crash loop. The engine calls them
//! synchronously from its actors, so a hook must return at once (spawn any I/O).

use std::sync::Arc;

pub use crate::dead_letters::{DeadLetter, DeadLetterReason};
use crate::handler::Delivery;

/// Something the keeper found worth telling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionReport {
    /// A group has not read or acked entries that retention would remove.
    Lagging {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
        /// The oldest entry the group still needs.
        needed_id: String,
        /// Entries the group has not read yet (-1 when Redis cannot tell).
        lag: i64,
    },
    /// The hard cap removed entries some groups had not finished.
    ForcedTrim {
        /// The stream.
        stream: String,
        /// Entries removed by the cap.
        removed: u64,
        /// Groups that lost entries they had not finished.
        groups: Vec<String>,
    },
}

type DeadLetterHook = Arc<dyn Fn(&DeadLetter) + Send + Sync>;
type CrashLoopHook = Arc<dyn Fn(&str, u32) + Send + Sync>;
type RetentionHook = Arc<dyn Fn(&RetentionReport) + Send + Sync>;
type Resolver = actix::Recipient<crate::auto_resolve::Arrived>;
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
    /// The auto-resolution rules, told of each dead letter (wired by the builder).
    resolver: Option<Resolver>,
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

    pub(crate) fn with_resolver(mut self, r: Resolver) -> Self {
        self.resolver = Some(r);
        self
    }

    pub(crate) fn dead_letter(&self, d: &DeadLetter) {
        if let Some(r) = &self.resolver {
            // Rules without a delay act on it now.
            r.do_send(crate::auto_resolve::Arrived(d.id()));
        }
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
