//! # strategist-actors: the engine of the Collective Strategist event system
//!
//! Typed events on Redis Streams, consumed by supervised actix actors. The engine
//! knows Redis Streams, the event envelope, routers, workers, supervision, retries and
//! dead letters; it knows no business event. The application registers its event
//! types in a [`Catalog`] and its handlers in [`Pool`]s, then starts an [`Engine`].
//!
//! # Layout
//! - [`envelope`]: the event envelope and its flat wire fields.
//! - [`catalog`]: event types, their streams, versions, payload checks, upcasters.
//! - [`handler`]: handlers (plain async functions) and retryable/permanent errors;
//!   `batch`: [`Handler::batch`], handlers of many deliveries at once.
//! - [`pool`]: a consumer group with its handlers and options.
//! - [`retry`]: the retry policy (delay per attempt).
//! - [`publisher`]: validated, idempotent publishing.
//! - [`request`]: request-response: [`Replies`], one reply listener per process.
//! - [`retention`]: trimming that never cuts an unread entry.
//! - [`dead_letters`]: list, show, reprocess, purge dead letters.
//! - [`engine`]: starts routers and workers under supervisors; drains them;
//!   [`EngineBuilder`] (`Engine::builder`) declares pools, sagas, retention and
//!   auto-resolution and starts them all, wired together.
//! - `router` (a folder: read loop, ordering keys, acks, failures, upkeep),
//!   `worker`: the actors (private); `group`: the Redis calls of one consumer group
//!   and their scripts, the seam for other backends; `dispose`: the pure decision
//!   of what becomes of an entry after its handler call; `leases`: lease keeping on
//!   a thread of its own; `watchdog`: restarts a router that died.
//! - [`redis_io`]: group creation, reply parsing, Lua scripts (`scripts/*.lua`).
//! - [`auto_resolve`]: rules that reprocess, upcast or drop dead letters.
//! - [`saga`]: multi-step workflows that survive crashes.
//! - [`conn`]: [`RedisClient`] and [`Conn`], a single server or a Redis Cluster.
//! - [`partition`]: a hot stream split into `<stream>:<n>` by a hash of its
//!   ordering key (the rule, FNV-1a, validation).
//! - [`keys`]: key names (and each stream's partitions); [`health`]: readiness board; [`hooks`]: dead-letter and
//!   crash-loop hooks; [`stats`]: counters; [`budget`]: restart budget.
//! - [`metrics`]: per event type counts, processing time and latency (HDR
//!   histograms over a sliding window); [`Engine::metrics`] reads them all.
//!
//! # Delivery
//! At least once. An entry is acked only after its handler succeeded or after it was
//! moved to the dead letters in the same atomic step. Failed entries stay pending
//! in Redis with their retry time in a sorted set beside the stream, so a retry
//! survives a crash and its attempt count is Redis's delivery count.
#![warn(missing_docs)]

pub mod auto_resolve;
mod batch;
pub mod budget;
mod builder;
pub mod catalog;
pub mod conn;
pub mod dead_letters;
mod dispose;
pub mod engine;
pub mod envelope;
mod group;
pub mod handler;
pub mod health;
pub mod hooks;
pub mod keys;
mod leases;
pub mod metrics;
pub mod partition;
pub mod pool;
pub mod publisher;
pub mod redis_io;
pub mod request;
pub mod retention;
pub mod retry;
mod router;
pub mod saga;
pub mod scaling;
pub mod stats;
mod watchdog;
mod worker;

pub use auto_resolve::{AutoResolver, ResolutionAction, ResolutionRule};
pub use batch::Batching;
pub use budget::RestartBudget;
pub use builder::EngineBuilder;
pub use catalog::{Catalog, CheckError, EventType};
pub use conn::{Conn, ConnOptions, RedisClient};
pub use dead_letters::{
    AuditAction, AuditPage, DeadLetterEntry, DeadLetterError, DeadLetterFilter, DeadLetters,
};
pub use engine::{
    Engine, EngineConfig, EngineError, EngineMetrics, Resizer, RouteInfo, RouteSnapshot,
};
pub use envelope::{DecodeError, Envelope};
pub use handler::{Delivery, Event, Handler, HandlerError};
pub use health::Health;
pub use hooks::{DeadLetter, DeadLetterReason, Hooks};
pub use keys::Keys;
pub use partition::PartitionError;
pub use pool::{Pool, PoolOptions, StartFrom, TypeOptions};
pub use publisher::{Durability, PublishError, Published, Publisher};
pub use request::{PendingReply, Replies, RequestError};
pub use retention::{RetentionKeeper, RetentionReport, RetentionStats, StreamRetention};
pub use retry::{BackoffStrategy, RetryPolicy};
pub use saga::{
    SagaDefinition, SagaManager, SagaState, SagaStatus, SagaStep, SagaStore, SagaStoreError,
};
pub use stats::{RouteStats, StatsSnapshot};
