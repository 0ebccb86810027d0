//! The engine: starts one router and its workers per (stream, pool) under
//! supervisors, spread over one arbiter per core, and drains them at shutdown.
//!
//! Routers are spread round-robin over the arbiters; a router's workers live on its
//! own arbiter, so handing an entry to a worker is a local message, not a wake-up of
//! another thread (measured: about 20% more throughput on 2 cores). Handlers with
//! CPU-heavy work move it off the reactor (`tokio::task::spawn_blocking`).
//!
//! Partitions: a stream split into `N` partitions ([`crate::partition`]) gets one
//! router (with its own workers) per partition and group: on a cluster one
//! `XREADGROUP` cannot span slots, and each partition keeps per-key order on its
//! own. The group is created on every partition. A pool's ordering key on a split
//! stream must be the field the catalog partitions by, or per-key order could not
//! hold across partitions: the engine refuses to start otherwise.
//!
//! Must be started from inside a running actix `System`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::conn::{Conn, RedisClient};
use actix::prelude::*;

use crate::catalog::Catalog;
use crate::group::{GroupBackend, GroupKeys, Source};
use crate::health::Health;
use crate::hooks::Hooks;
use crate::keys::Keys;
use crate::leases::{LeaseKeeper, LeaseTable, Leases, LostSink};
use crate::metrics::{RouteMetrics, TypeSnapshot};
use crate::partition::workers_per_partition;
use crate::pool::{Pool, StartFrom};
use crate::router::{Crash, Drain, Resize, Route};
use crate::stats::{RouteStats, StatsSnapshot};
use crate::watchdog::{RouterSlot, RouterSpec, Watchdog};
use crate::worker::{Restarts, Worker, WorkerFactory};

/// Process-wide settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Key names (prefix).
    pub keys: Keys,
    /// This process's consumer name prefix, `<host>-<pid>`; worker `n` of pool
    /// `p` reads as `<host>-<pid>-<p>-<n>`.
    pub consumer_prefix: String,
    /// Arbiter threads to spread actors over (one per core).
    pub arbiters: usize,
    /// Approximate length cap of each dead-letter stream (0: none).
    pub dlq_maxlen: u64,
    /// Record per type counts and timings ([`crate::metrics`]); off only to
    /// measure what they cost.
    pub metrics: bool,
}

impl EngineConfig {
    /// Defaults for this process: no prefix, `<host>-<pid>`, one arbiter per core.
    pub fn for_this_process() -> Self {
        EngineConfig {
            keys: Keys::default(),
            consumer_prefix: format!("{}-{}", hostname(), std::process::id()),
            arbiters: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            dlq_maxlen: 1_000_000,
            metrics: true,
        }
    }
}

/// On a partitioned stream, every ordering key a pool sets must be the field the
/// catalog partitions that type by: entries of one key must all be in the one
/// partition whose router orders them.
fn check_ordering(pool: &Pool, catalog: &Catalog, keys: &Keys) -> Result<(), EngineError> {
    for stream in pool.streams() {
        if keys.partition_count(stream) == 1 {
            continue;
        }
        for t in pool.types_on(stream) {
            let Some(field) = pool.options.ordering_key_for(t) else {
                continue;
            };
            let by = catalog.get(t).and_then(|i| i.ordering_key.as_deref());
            if by != Some(field) {
                return Err(EngineError::Config {
                    pool: pool.name.clone(),
                    message: format!(
                        "`{t}` is ordered by `{field}` but stream `{stream}` is partitioned by {}; set the type's ordering key in the catalog to `{field}`",
                        by.map_or("event id".to_owned(), |b| format!("`{b}`"))
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Logs a warning when `stream` has entries in a Redis stream its partition count
/// no longer names (the plain key of a stream now split, or partition 0 of a stream
/// no longer split): the partition count was changed without draining first, and
/// no router reads those entries. Only these two cases are looked at; a change
/// from one split to another (4 to 8) is not detected.
async fn warn_outside_partitions(shared: &Conn, keys: &Keys, stream: &str) {
    let other = if keys.partition_count(stream) > 1 {
        stream.to_owned()
    } else {
        crate::partition::partition_name(stream, 0)
    };
    let key = keys.stream(&other);
    let len: redis::RedisResult<u64> = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut shared.clone())
        .await;
    if let Ok(n) = len
        && n > 0
    {
        tracing::warn!(
            stream,
            unread_key = %key,
            entries = n,
            partitions = keys.partition_count(stream),
            "entries lie in a stream outside the configured partitions (was the partition count changed without draining?); no router reads them"
        );
    }
}

/// This machine's host name, for consumer names an operator can read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A pool's options are inconsistent.
    #[error("pool `{pool}`: {message}")]
    Config {
        /// The pool.
        pool: String,
        /// What is wrong.
        message: String,
    },
    /// Redis refused to create a consumer group.
    #[error("cannot create consumer group `{group}` on `{stream}`: {source}")]
    Group {
        /// The stream key.
        stream: String,
        /// The group.
        group: String,
        /// What Redis said.
        source: redis::RedisError,
    },
}

/// One running router, as reported.
#[derive(Clone)]
pub struct RouteInfo {
    /// The stream (without prefix): the logical one on a partitioned stream.
    pub stream: String,
    /// The partition this router reads, on a partitioned stream.
    pub partition: Option<u32>,
    /// The consumer group.
    pub group: String,
    /// This process's consumer names in the group start with this: worker `n`
    /// reads as `<consumer_prefix>-<n>`.
    pub consumer_prefix: String,
    /// The event types it handles (`*` for all).
    pub types: Vec<String>,
    /// Its counters.
    pub stats: Arc<RouteStats>,
    /// Its per event type measurements (shared by the routers of every partition
    /// of one stream and group).
    pub metrics: Arc<RouteMetrics>,
}

/// One router's figures at one moment: see [`EngineMetrics::snapshot`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteSnapshot {
    /// The stream (without prefix).
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// Routers summed into this snapshot: one per partition of the stream.
    pub partitions: u32,
    /// This process's consumer names in the group start with this: worker `n`
    /// reads as `<consumer_prefix>-<n>`.
    pub consumer_prefix: String,
    /// Its counters (and entries in flight now).
    pub stats: StatsSnapshot,
    /// Per event type: counts, processing time, latency, the sliding window.
    pub types: Vec<TypeSnapshot>,
}

/// A cheap, cloneable handle on the measurements of every router of an engine, for
/// whoever reports them (an HTTP handler, an exporter) without holding the engine.
///
/// ```no_run
/// # fn show(engine: &strategist_actors::Engine) {
/// let metrics = engine.metrics();
/// for route in metrics.snapshot() {
///     for t in &route.types {
///         println!(
///             "{}/{} {}: {} handled, {:.1}/min, p95 {:.2} ms",
///             route.stream, route.group, t.event_type, t.handled,
///             t.window.throughput_per_minute(), t.window.processing.p95_ms,
///         );
///     }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct EngineMetrics {
    routes: Arc<[RouteInfo]>,
}

impl EngineMetrics {
    /// No routers: for a process that runs none.
    pub fn empty() -> Self {
        EngineMetrics {
            routes: Arc::from(Vec::new()),
        }
    }

    /// Every (stream, group)'s figures now, in the order the routers were started;
    /// the routers of a partitioned stream's partitions are summed into one.
    pub fn snapshot(&self) -> Vec<RouteSnapshot> {
        let mut out: Vec<RouteSnapshot> = Vec::new();
        for r in self.routes.iter() {
            let stats = r.stats.snapshot();
            match out
                .iter_mut()
                .find(|s| s.stream == r.stream && s.group == r.group)
            {
                // Same metrics (shared): only the counters add up.
                Some(s) => {
                    s.stats = s.stats.plus(&stats);
                    s.partitions += 1;
                }
                None => out.push(RouteSnapshot {
                    stream: r.stream.clone(),
                    group: r.group.clone(),
                    partitions: 1,
                    consumer_prefix: r.consumer_prefix.clone(),
                    stats,
                    types: r.metrics.snapshot(),
                }),
            }
        }
        out
    }
}

/// Resizes the pools of an engine: see [`Engine::resizer`].
#[derive(Clone)]
pub struct Resizer {
    /// Each router's group, the partition count of its stream, and the router.
    targets: Vec<(String, u32, RouterSlot)>,
}

impl Resizer {
    /// As [`Engine::resize`].
    pub fn resize(&self, group: &str, workers: usize) -> usize {
        let mut told = 0;
        for (g, parts, slot) in &self.targets {
            if g == group {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .do_send(Resize(workers_per_partition(workers, *parts)));
                told += 1;
            }
        }
        told
    }
}

/// The running engine.
pub struct Engine {
    routers: Vec<RouterSlot>,
    routes: Arc<[RouteInfo]>,
    arbiters: Vec<Arbiter>,
    health: Health,
}

impl Engine {
    /// Creates every group that is missing and starts every router and worker.
    pub async fn start(
        client: impl Into<RedisClient>,
        shared: impl Into<Conn>,
        catalog: Arc<Catalog>,
        config: EngineConfig,
        pools: Vec<Pool>,
        health: Health,
        hooks: Hooks,
    ) -> Result<Engine, EngineError> {
        let (client, shared): (RedisClient, Conn) = (client.into(), shared.into());
        for pool in &pools {
            pool.options
                .validate()
                .map_err(|message| EngineError::Config {
                    pool: pool.name.clone(),
                    message,
                })?;
        }
        for pool in &pools {
            check_ordering(pool, &catalog, &config.keys)?;
        }
        let mut arbiters: Vec<Arbiter> = (0..config.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let mut specs = Vec::new();
        let mut tables = Vec::new();
        let mut routes = Vec::new();
        let mut n = 0usize;
        for pool in pools {
            for stream in pool.streams() {
                // One measurement set per (stream, group), whatever the partitions.
                let metrics = Arc::new(if config.metrics {
                    RouteMetrics::default()
                } else {
                    RouteMetrics::off()
                });
                warn_outside_partitions(&shared, &config.keys, stream).await;
                for part_name in config.keys.partitions(stream) {
                    let partition = config.keys.logical(&part_name).1;
                    let part_name = part_name.as_str();
                    let consumer_prefix = format!("{}-{}", config.consumer_prefix, pool.name);
                    let keys = Arc::new(GroupKeys {
                        sources: vec![
                            Source {
                                key: config.keys.stream(part_name),
                                retry_key: config.keys.retry(part_name, &pool.name),
                            },
                            Source {
                                key: config.keys.redeliver(part_name, &pool.name),
                                retry_key: config.keys.redeliver_retry(part_name, &pool.name),
                            },
                        ],
                        dlq_key: config.keys.dlq(part_name),
                        group: pool.name.clone(),
                        consumer_prefix: consumer_prefix.clone(),
                        dlq_maxlen: config.dlq_maxlen,
                    });
                    let backend = GroupBackend::new(shared.clone(), keys.clone());
                    let from_start = pool.options.start_from == StartFrom::Beginning;
                    if let Err(source) = backend.clone().ensure(from_start).await {
                        return Err(EngineError::Group {
                            stream: config.keys.stream(part_name),
                            group: pool.name.clone(),
                            source,
                        });
                    }
                    let o = &pool.options;
                    let stats = Arc::new(RouteStats::default());
                    let factory: WorkerFactory = {
                        let prefix = format!("worker:{part_name}/{}", pool.name);
                        let (health, hooks, stats) = (health.clone(), hooks.clone(), stats.clone());
                        let restarts = Restarts {
                            max: o.max_restarts,
                            window: Duration::from_millis(o.restart_window_ms),
                            cooldown: Duration::from_millis(o.restart_cooldown_ms),
                        };
                        let concurrency = o.concurrency;
                        let arbiter = arbiters[n % arbiters.len()].handle();
                        Arc::new(move |i: usize| {
                            let part = format!("{prefix}/{i}");
                            let (health, hooks, stats) =
                                (health.clone(), hooks.clone(), stats.clone());
                            Supervisor::start_in_arbiter(&arbiter, move |_| {
                                Worker::new(part, restarts, health, hooks, concurrency, stats)
                            })
                        })
                    };
                    let per_router =
                        workers_per_partition(o.workers, config.keys.partition_count(stream));
                    let workers: Vec<Addr<Worker>> = (0..per_router).map(|i| factory(i)).collect();
                    let route = Arc::new(Route {
                        stream: stream.to_owned(),
                        partition,
                        part: format!("router:{part_name}/{}", pool.name),
                        options: pool.options.clone(),
                        handlers: pool.handlers.get(stream).cloned().unwrap_or_default(),
                        fallback: pool.fallback.get(stream).cloned(),
                        catalog: catalog.clone(),
                        hooks: hooks.clone(),
                        stats: stats.clone(),
                        metrics: metrics.clone(),
                    });
                    routes.push(RouteInfo {
                        stream: stream.to_owned(),
                        partition,
                        group: pool.name.clone(),
                        consumer_prefix,
                        types: pool
                            .types_on(stream)
                            .into_iter()
                            .map(String::from)
                            .collect(),
                        stats,
                        metrics: metrics.clone(),
                    });
                    let leases = Arc::new(Leases::default());
                    let spec = RouterSpec {
                        route: route.clone(),
                        client: client.clone(),
                        backend: backend.clone(),
                        leases: leases.clone(),
                        workers,
                        factory,
                        health: health.clone(),
                        arbiter: arbiters[n % arbiters.len()].handle(),
                    };
                    let addr = spec.start();
                    let lost: LostSink = Arc::new(Mutex::new(addr.clone().recipient()));
                    let slot: RouterSlot = Arc::new(Mutex::new(addr));
                    let o = &pool.options;
                    tables.push(LeaseTable {
                        backend,
                        leases,
                        router: lost.clone(),
                        min_age: Duration::from_millis(o.claim_idle_ms / 4),
                        every: Duration::from_millis((o.claim_idle_ms / 8).max(10)),
                        part: route.part.clone(),
                    });
                    specs.push((spec, slot, lost));
                    n += 1;
                }
            }
        }
        // Leases and the watchdog run on a thread where no handler runs, so a
        // handler that blocks its thread cannot stop them.
        let upkeep = Arbiter::new();
        let keeper_client = client.clone();
        Supervisor::start_in_arbiter(&upkeep.handle(), move |_| {
            LeaseKeeper::new(keeper_client, tables)
        });
        let routers = specs.iter().map(|(_, slot, _)| slot.clone()).collect();
        let watched = specs;
        Watchdog::start_in_arbiter(&upkeep.handle(), move |_| Watchdog {
            routers: watched,
            every: Duration::from_millis(250),
        });
        arbiters.push(upkeep);
        Ok(Engine {
            routers,
            routes: Arc::from(routes),
            arbiters,
            health,
        })
    }

    /// The routers running in this process.
    pub fn routes(&self) -> &[RouteInfo] {
        &self.routes
    }

    /// A handle on every router's measurements (see [`EngineMetrics`]).
    pub fn metrics(&self) -> EngineMetrics {
        EngineMetrics {
            routes: self.routes.clone(),
        }
    }

    /// The health board the engine reports to.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Stops reading everywhere and waits, at most `grace`, for in-flight work to
    /// finish and be acked. True when everything drained in time; what did not
    /// stays pending in Redis and is claimed by another consumer later.
    pub async fn drain(&self, grace: Duration) -> bool {
        let all = futures_util::future::join_all(self.routers.iter().map(|r| {
            let addr = r.lock().unwrap_or_else(PoisonError::into_inner).clone();
            addr.send(Drain)
        }));
        tokio::time::timeout(grace, all).await.is_ok()
    }

    /// Sets the worker count of every router of `group` in this process to
    /// `workers` (at least 1; on a stream split into `N` partitions each of its `N`
    /// routers runs [`workers_per_partition`]): new workers start at once; workers beyond the count
    /// take nothing new and stop once what they run has finished and been acked.
    /// Returns how many routers were told.
    ///
    /// ```no_run
    /// # fn grow(engine: &strategist_actors::Engine) {
    /// let told = engine.resize("file-processor", 6);
    /// assert!(told > 0, "the pool runs here");
    /// # }
    /// ```
    pub fn resize(&self, group: &str, workers: usize) -> usize {
        self.resizer().resize(group, workers)
    }

    /// A cloneable handle that resizes pools of this engine (for a scaler task that
    /// does not hold the engine).
    pub fn resizer(&self) -> Resizer {
        Resizer {
            targets: self
                .routes
                .iter()
                .zip(self.routers.iter())
                .map(|(info, slot)| {
                    let parts = self
                        .routes
                        .iter()
                        .filter(|r| r.stream == info.stream && r.group == info.group)
                        .count();
                    (info.group.clone(), parts as u32, slot.clone())
                })
                .collect(),
        }
    }

    /// Makes router `i` panic outside every guard, as a bug in it would: for tests
    /// of the watchdog. Not for production use.
    #[doc(hidden)]
    pub fn inject_router_panic(&self, i: usize) {
        if let Some(r) = self.routers.get(i) {
            r.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .do_send(Crash);
        }
    }

    /// Stops the arbiter threads. Call after [`Engine::drain`].
    pub fn stop(self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}
