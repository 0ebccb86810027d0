//! Building an [`Engine`]: everything a process runs on the engine (pools, sagas,
//! retention, auto-resolution of dead letters) is declared on one builder and
//! started by it, so an application never starts an engine actor itself or sends
//! one a message. The builder also wires the parts together: a dead letter
//! reaches the auto-resolution rules at once, the hooks reach the retention
//! keeper.
//!
//! ```no_run
//! # async fn demo(client: redis::Client, conn: redis::aio::ConnectionManager) -> Result<(), strategist_actors::EngineError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use strategist_actors::{Catalog, Engine, Pool, PoolOptions};
//!
//! let engine = Engine::builder(client, conn, Arc::new(Catalog::new()))
//!     .pool(Pool::new("archiver", PoolOptions::default()))
//!     .retention(vec![], Duration::from_secs(5), Duration::from_secs(300))
//!     .start()
//!     .await?;
//! engine.drain(Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::conn::{Conn, RedisClient};
use actix::prelude::*;

use crate::auto_resolve::{AutoResolver, ResolutionRule};
use crate::catalog::Catalog;
use crate::dead_letters::DeadLetters;
use crate::engine::{Engine, EngineConfig, EngineError};
use crate::health::Health;
use crate::hooks::Hooks;
use crate::pool::{Pool, PoolOptions};
use crate::publisher::Publisher;
use crate::retention::{RetentionKeeper, RetentionStats, StreamRetention};
use crate::saga::{SagaDefinition, SagaStore};

struct RetentionPlan {
    streams: Vec<StreamRetention>,
    interval: Duration,
    report_every: Duration,
    stats: Arc<RetentionStats>,
}

struct AutoResolvePlan {
    dead_letters: DeadLetters,
    rules: Vec<ResolutionRule>,
    interval: Duration,
}

struct SagaPlan {
    def: SagaDefinition,
    store: Arc<dyn SagaStore>,
    publisher: Publisher,
    options: PoolOptions,
}

/// Declares what an [`Engine`] runs; [`EngineBuilder::start`] starts it all.
pub struct EngineBuilder {
    client: RedisClient,
    shared: Conn,
    catalog: Arc<Catalog>,
    config: EngineConfig,
    pools: Vec<Pool>,
    health: Health,
    hooks: Hooks,
    retention: Option<RetentionPlan>,
    auto_resolve: Option<AutoResolvePlan>,
    sagas: Vec<SagaPlan>,
}

impl Engine {
    /// A builder for an engine on `client` (blocking reads get connections of
    /// their own from it) and `shared` (everything else).
    pub fn builder(
        client: impl Into<RedisClient>,
        shared: impl Into<Conn>,
        catalog: Arc<Catalog>,
    ) -> EngineBuilder {
        EngineBuilder {
            client: client.into(),
            shared: shared.into(),
            catalog,
            config: EngineConfig::for_this_process(),
            pools: Vec::new(),
            health: Health::default(),
            hooks: Hooks::default(),
            retention: None,
            auto_resolve: None,
            sagas: Vec::new(),
        }
    }
}

impl EngineBuilder {
    /// Process-wide settings (default: [`EngineConfig::for_this_process`]).
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// A consumer group to run.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pools.push(pool);
        self
    }

    /// Several consumer groups to run.
    pub fn pools(mut self, pools: impl IntoIterator<Item = Pool>) -> Self {
        self.pools.extend(pools);
        self
    }

    /// The readiness board the engine reports to.
    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The application's hooks.
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Trims `streams` every `interval`, reporting a lagging group at most every
    /// `report_every`.
    pub fn retention(
        mut self,
        streams: Vec<StreamRetention>,
        interval: Duration,
        report_every: Duration,
    ) -> Self {
        self.retention = Some(RetentionPlan {
            streams,
            interval,
            report_every,
            stats: Arc::default(),
        });
        self
    }

    /// Applies `rules` to dead letters as they arrive and every `interval`.
    pub fn auto_resolve(
        mut self,
        dead_letters: DeadLetters,
        rules: Vec<ResolutionRule>,
        interval: Duration,
    ) -> Self {
        self.auto_resolve = Some(AutoResolvePlan {
            dead_letters,
            rules,
            interval,
        });
        self
    }

    /// Runs the saga `def`: its manager and the consumer group that feeds it.
    pub fn saga(
        mut self,
        def: SagaDefinition,
        store: Arc<dyn SagaStore>,
        publisher: Publisher,
        options: PoolOptions,
    ) -> Self {
        self.sagas.push(SagaPlan {
            def,
            store,
            publisher,
            options,
        });
        self
    }

    /// Starts everything declared. Must run inside an actix `System`.
    pub async fn start(self) -> Result<Engine, EngineError> {
        let mut hooks = self.hooks;
        if let Some(a) = self.auto_resolve {
            let resolver =
                AutoResolver::new(a.dead_letters, a.rules, self.catalog.clone(), a.interval)
                    .start();
            hooks = hooks.with_resolver(resolver.recipient());
        }
        if let Some(r) = self.retention {
            RetentionKeeper::new(
                self.shared.clone(),
                self.config.keys.clone(),
                r.streams,
                r.interval,
                r.report_every,
                hooks.clone(),
                r.stats,
            )
            .start();
        }
        let mut pools = self.pools;
        for s in self.sagas {
            let (_manager, pool) = crate::saga::start(s.def, s.store, s.publisher, s.options);
            pools.push(pool);
        }
        Engine::start(
            self.client,
            self.shared,
            self.catalog,
            self.config,
            pools,
            self.health,
            hooks,
        )
        .await
    }
}
