//! The engine: starts one router and its workers per (stream, pool) under
//! supervisors, spread over one arbiter per core, and drains them at shutdown.
//!
//! Routers are spread round-robin over the arbiters; a router's workers live on its
//! own arbiter, so handing an entry to a worker is a local message, not a wake-up of
//! another thread (measured: about 20% more throughput on 2 cores). Handlers with
//! CPU-heavy work move it off the reactor (`tokio::task::spawn_blocking`).
//!
//! Must be started from inside a running actix `System`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use redis::aio::ConnectionManager;

use crate::catalog::Catalog;
use crate::group::{GroupBackend, GroupKeys, Source};
use crate::health::Health;
use crate::hooks::Hooks;
use crate::keys::Keys;
use crate::leases::{LeaseKeeper, LeaseTable, Leases, LostSink};
use crate::metrics::{RouteMetrics, TypeSnapshot};
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
    /// The stream (without prefix).
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// This process's consumer names in the group start with this: worker `n`
    /// reads as `<consumer_prefix>-<n>`.
    pub consumer_prefix: String,
    /// The event types it handles (`*` for all).
    pub types: Vec<String>,
    /// Its counters.
    pub stats: Arc<RouteStats>,
    /// Its per event type measurements.
    pub metrics: Arc<RouteMetrics>,
}

/// One router's figures at one moment: see [`EngineMetrics::snapshot`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteSnapshot {
    /// The stream (without prefix).
    pub stream: String,
    /// The consumer group.
    pub group: String,
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

    /// Every router's figures now, in the order the routers were started.
    pub fn snapshot(&self) -> Vec<RouteSnapshot> {
        self.routes
            .iter()
            .map(|r| RouteSnapshot {
                stream: r.stream.clone(),
                group: r.group.clone(),
                consumer_prefix: r.consumer_prefix.clone(),
                stats: r.stats.snapshot(),
                types: r.metrics.snapshot(),
            })
            .collect()
    }
}

/// Resizes the pools of an engine: see [`Engine::resizer`].
#[derive(Clone)]
pub struct Resizer {
    targets: Vec<(String, RouterSlot)>,
}

impl Resizer {
    /// As [`Engine::resize`].
    pub fn resize(&self, group: &str, workers: usize) -> usize {
        let mut told = 0;
        for (g, slot) in &self.targets {
            if g == group {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .do_send(Resize(workers.max(1)));
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
        client: redis::Client,
        shared: ConnectionManager,
        catalog: Arc<Catalog>,
        config: EngineConfig,
        pools: Vec<Pool>,
        health: Health,
        hooks: Hooks,
    ) -> Result<Engine, EngineError> {
        for pool in &pools {
            pool.options
                .validate()
                .map_err(|message| EngineError::Config {
                    pool: pool.name.clone(),
                    message,
                })?;
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
                let consumer_prefix = format!("{}-{}", config.consumer_prefix, pool.name);
                let keys = Arc::new(GroupKeys {
                    sources: vec![
                        Source {
                            key: config.keys.stream(stream),
                            retry_key: config.keys.retry(stream, &pool.name),
                        },
                        Source {
                            key: config.keys.redeliver(stream, &pool.name),
                            retry_key: config.keys.redeliver_retry(stream, &pool.name),
                        },
                    ],
                    dlq_key: config.keys.dlq(stream),
                    group: pool.name.clone(),
                    consumer_prefix: consumer_prefix.clone(),
                    dlq_maxlen: config.dlq_maxlen,
                });
                let backend = GroupBackend::new(shared.clone(), keys.clone());
                let from_start = pool.options.start_from == StartFrom::Beginning;
                if let Err(source) = backend.clone().ensure(from_start).await {
                    return Err(EngineError::Group {
                        stream: config.keys.stream(stream),
                        group: pool.name.clone(),
                        source,
                    });
                }
                let o = &pool.options;
                let stats = Arc::new(RouteStats::default());
                let factory: WorkerFactory = {
                    let prefix = format!("worker:{stream}/{}", pool.name);
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
                        let (health, hooks, stats) = (health.clone(), hooks.clone(), stats.clone());
                        Supervisor::start_in_arbiter(&arbiter, move |_| {
                            Worker::new(part, restarts, health, hooks, concurrency, stats)
                        })
                    })
                };
                let workers: Vec<Addr<Worker>> = (0..o.workers).map(|i| factory(i)).collect();
                let metrics = Arc::new(if config.metrics {
                    RouteMetrics::default()
                } else {
                    RouteMetrics::off()
                });
                let route = Arc::new(Route {
                    stream: stream.to_owned(),
                    part: format!("router:{stream}/{}", pool.name),
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
                    group: pool.name.clone(),
                    consumer_prefix,
                    types: pool
                        .types_on(stream)
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    stats,
                    metrics,
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
    /// `workers` (at least 1): new workers start at once; workers beyond the count
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
                .map(|(info, slot)| (info.group.clone(), slot.clone()))
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
