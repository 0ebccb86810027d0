//! The subcommands other than `serve`, one file each.

pub mod bench;
pub mod bench_observability;
pub mod db;
pub mod dlq;
pub mod healthcheck;
pub mod load;
pub mod publish;
pub mod schema;
pub mod tail;
