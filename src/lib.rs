//! # strategist: the application of the Collective Strategist event system
//!
//! The typed events of the design, the worker pools and their handlers, HTTP,
//! configuration and the command line, on top of the engine in `strategist-actors`.
//!
//! # Layout
//! - [`alerts`]: the system-monitor pool: critical errors to admins, rate-limited.
//! - [`ai`]: providers, templates and the content-generator's handlers.
//! - [`auth`]: bearer tokens (HS256 JWT).
//! - [`embeddings`]: chunking, the embedder trait, the offline and OpenAI-compatible
//!   embedders, cosine similarity (pure: no Redis, no database).
//! - [`events`]: every event type as a typed payload, one file per stream.
//! - [`pools`]: which consumer group handles which types.
//! - [`metrics`]: the design's metrics from the engine, Redis and `/proc`, as the
//!   JSON of `/api/v1/metrics` and the Prometheus text of `/metrics`.
//! - [`notify`]: notifications to people: the notifier, its channels (WebSocket,
//!   email, Web Push), the WebSocket.
//! - [`archiver`]: the group that writes every event into the event store.
//! - [`projections`]: projection groups (user preferences).
//! - [`scaler`]: moves each pool's worker count by its metric (the design's
//!   scaling table).
//! - [`sagas`]: the FileProcessingSaga on the engine's saga runtime.
//! - [`database`]: the database as the service sees it (opened in the background).
//! - [`degraded`]: `system.performance.degraded` when a threshold is crossed, and
//!   on recovery.
//! - [`dead_letter_mirror`]: copies the Redis dead-letter streams into the database.
//! - [`files`]: uploaded files: type sniffing and text extraction (pure, bounded).
//! - [`config`]: settings from `config/default.toml`, a file and the environment.
//! - [`serve`]: `strategist serve`, start-up and graceful shutdown.
//! - [`health_report`]: `system.service.health` on a timer.
//! - [`hooks`]: what the application publishes when the engine decides alone.
//! - [`http`]: the HTTP API (one file per resource) and its OpenAPI document.
//! - [`cli`]: the other subcommands (publish, tail, schema, bench).
//! - [`redis_conn`]: the shared Redis connection with clear errors.
//! - [`local_redis`]: a private `redis-server` for the benchmark and tests.
//! - [`store`]: the database: event store, projections (sea-orm, SQLite or PostgreSQL).
//! - [`telemetry`]: logging set-up.
//! - [`ai`]: text generation: the provider trait, OpenAI-compatible and Anthropic backends.

pub mod ai;
pub mod alerts;
pub mod archiver;
pub mod auth;
pub mod briefings;
pub mod cli;
pub mod config;
pub mod database;
pub mod dead_letter_mirror;
pub mod degraded;
pub mod embeddings;
pub mod events;
pub mod files;
pub mod health_report;
pub mod hooks;
pub mod http;
pub mod local_redis;
pub mod maintenance;
pub mod market;
pub mod metrics;
pub mod notify;
pub mod pools;
pub mod projections;
pub mod redis_conn;
pub mod sagas;
pub mod scaler;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod telemetry;
