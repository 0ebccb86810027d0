//! A worker pool: one consumer group, the handlers it runs per event type, and how
//! it reads, retries and gives up.
//!
//! A pool reads every stream that one of its handlers' types belongs to; per process
//! the engine starts one router and `workers` worker actors per (stream, pool).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::EventType;
use crate::handler::{Event, Handler, HandlerError};
use crate::retry::RetryPolicy;

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// Every entry still in the stream (nothing published before the group existed
    /// is skipped).
    Beginning,
    /// Only entries published after the group was created.
    End,
}

/// How a pool reads, runs and retries. Every field has a default that suits
/// production; tests shorten the times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolOptions {
    /// Worker actors per stream in this process; on a stream split into
    /// partitions, divided among their routers
    /// ([`crate::partition::workers_per_partition`]).
    pub workers: usize,
    /// Handler calls one worker runs at once. 1 (the default) runs one at a time;
    /// more suits handlers that mostly wait (a network call, a batch writer).
    pub concurrency: usize,
    /// Entries queued per worker beyond those it runs, so a worker never idles
    /// while its router waits on Redis. In-flight work per router is bounded by
    /// `workers * (concurrency + prefetch)`.
    pub prefetch: usize,
    /// The most entries one `XREADGROUP` asks for.
    pub read_count: usize,
    /// Entries held beyond `capacity()` while they wait behind an earlier entry
    /// with the same ordering key. They do not take read room from other keys, so
    /// one busy key cannot stall the others; this bounds the memory they use.
    pub max_waiting: usize,
    /// How long one `XREADGROUP` blocks waiting for new entries.
    pub block_ms: u64,
    /// A pending entry idle this long belongs to a consumer that is gone and is
    /// claimed by a live one. Live workers refresh their entries well before.
    pub claim_idle_ms: u64,
    /// How often due retries and stale entries are looked for.
    pub claim_interval_ms: u64,
    /// A handler running longer is cancelled and counted as a failed attempt.
    pub handler_timeout_ms: u64,
    /// Retry policy for the pool's handlers.
    pub retry: RetryPolicy,
    /// An entry delivered more often than this (say, because it crashes the whole
    /// process each time) is dead-lettered without running it again.
    pub max_deliveries: u32,
    /// Consumers of the group idle this long with nothing pending are removed.
    pub consumer_gc_idle_ms: u64,
    /// A worker restarted more than this many times within `restart_window_ms`
    /// is in a crash loop: it is reported, and it pauses before the next restart.
    pub max_restarts: u32,
    /// The window of `max_restarts`.
    pub restart_window_ms: u64,
    /// How long a worker in a crash loop pauses.
    pub restart_cooldown_ms: u64,
    /// Where the group starts when it is created.
    pub start_from: StartFrom,
    /// Settings of single event types, over the pool's.
    pub types: BTreeMap<String, TypeOptions>,
    /// Check known types' payloads against the catalog (and upcast them) before
    /// handing them over. Off for consumers that must see events exactly as
    /// published, such as an archive.
    pub validate_payloads: bool,
}

/// Settings of one event type within a pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypeOptions {
    /// A payload field (e.g. `file_id`): entries with the same value are handled one
    /// after another in stream order, also across retries; others in parallel.
    pub ordering_key: Option<String>,
    /// A retry policy of its own.
    pub retry: Option<RetryPolicy>,
    /// A handler timeout of its own.
    pub handler_timeout_ms: Option<u64>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            workers: 2,
            concurrency: 1,
            prefetch: 16,
            read_count: 256,
            max_waiting: 1000,
            block_ms: 2000,
            claim_idle_ms: 30_000,
            claim_interval_ms: 1000,
            handler_timeout_ms: 300_000,
            retry: RetryPolicy::default(),
            max_deliveries: 10,
            consumer_gc_idle_ms: 3_600_000,
            max_restarts: 5,
            restart_window_ms: 60_000,
            restart_cooldown_ms: 30_000,
            start_from: StartFrom::Beginning,
            types: BTreeMap::new(),
            validate_payloads: true,
        }
    }
}

impl PoolOptions {
    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("workers must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.read_count == 0 {
            return Err("read_count must be at least 1".into());
        }
        if self.claim_idle_ms < 3 * self.claim_interval_ms.max(1) / 2 {
            return Err("claim_idle_ms must be well above claim_interval_ms".into());
        }
        let policies = std::iter::once(&self.retry)
            .chain(self.types.values().filter_map(|t| t.retry.as_ref()));
        for p in policies {
            if self.max_deliveries < p.max_attempts {
                return Err("max_deliveries must be at least retry.max_attempts".into());
            }
            p.validate()?;
        }
        Ok(())
    }

    /// Entries one router may hold at once (running or queued at its workers).
    pub fn capacity(&self) -> usize {
        self.workers * (self.concurrency + self.prefetch)
    }

    pub(crate) fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// The retry policy of `event_type`.
    pub fn retry_for(&self, event_type: &str) -> &RetryPolicy {
        self.types
            .get(event_type)
            .and_then(|t| t.retry.as_ref())
            .unwrap_or(&self.retry)
    }

    /// The handler timeout of `event_type`.
    pub fn timeout_for(&self, event_type: &str) -> Duration {
        let ms = self
            .types
            .get(event_type)
            .and_then(|t| t.handler_timeout_ms)
            .unwrap_or(self.handler_timeout_ms);
        Duration::from_millis(ms)
    }

    /// The ordering key field of `event_type`, if it has one.
    pub fn ordering_key_for(&self, event_type: &str) -> Option<&str> {
        self.types
            .get(event_type)
            .and_then(|t| t.ordering_key.as_deref())
    }
}

/// A consumer group and its handlers.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use strategist_actors::{EventType, Pool, PoolOptions};
///
/// #[derive(Serialize, Deserialize)]
/// struct Pinged { n: u32 }
/// impl EventType for Pinged {
///     const TYPE: &'static str = "system.ping";
///     const STREAM: &'static str = "system.events";
/// }
/// let mut pool = Pool::new("pinger", PoolOptions::default());
/// pool.on(|_ev: strategist_actors::Event<Pinged>| async { Ok(()) });
/// assert_eq!(pool.streams(), vec!["system.events"]);
/// ```
#[derive(Clone)]
pub struct Pool {
    /// The consumer group's name.
    pub name: String,
    /// How it reads and retries.
    pub options: PoolOptions,
    /// Per stream: handler by event type.
    pub(crate) handlers: HashMap<String, HashMap<String, Handler>>,
    /// Per stream: the handler of every type without its own.
    pub(crate) fallback: HashMap<String, Handler>,
}

impl Pool {
    /// An empty pool named `name` (also its consumer group's name).
    pub fn new(name: impl Into<String>, options: PoolOptions) -> Self {
        Pool {
            name: name.into(),
            options,
            handlers: HashMap::new(),
            fallback: HashMap::new(),
        }
    }

    /// Handles `T` with a typed async function.
    pub fn on<T, F, Fut>(&mut self, f: F) -> &mut Self
    where
        T: EventType,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + 'static,
    {
        self.handle(T::STREAM, T::TYPE, Handler::typed(f))
    }

    /// Handles `event_type` on `stream` with any handler.
    pub fn handle(&mut self, stream: &str, event_type: &str, h: Handler) -> &mut Self {
        self.handlers
            .entry(stream.to_owned())
            .or_default()
            .insert(event_type.to_owned(), h);
        self
    }

    /// Handles every type on `stream` that has no handler of its own.
    pub fn handle_all(&mut self, stream: &str, h: Handler) -> &mut Self {
        self.fallback.insert(stream.to_owned(), h);
        self
    }

    /// The streams this pool reads, sorted.
    pub fn streams(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .handlers
            .keys()
            .chain(self.fallback.keys())
            .map(String::as_str)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The types this pool handles on `stream` (`*` for a fallback), sorted.
    pub fn types_on(&self, stream: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .handlers
            .get(stream)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if self.fallback.contains_key(stream) {
            v.push("*");
        }
        v.sort_unstable();
        v
    }
}
