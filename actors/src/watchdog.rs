//! The watchdog: notices a router that died (its actor's task ended on a panic
//! outside every guard, which the actix `Supervisor` does not see) and starts it
//! again with the same route and workers.
//!
//! A dead router is never silent: its line on the health board goes down (so
//! `/readyz` answers 503 until the new one has connected), the application's
//! `on_router_died` hook hears of it (the application publishes
//! `system.error.critical`), and it is logged. What the dead router held is still
//! pending in Redis and is claimed again once its leases lapse.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;

use crate::group::GroupBackend;
use crate::health::Health;
use crate::leases::{Leases, LostSink};
use crate::router::{Route, Router};
use crate::worker::{Worker, WorkerFactory};

/// What it takes to start one router again.
#[derive(Clone)]
pub(crate) struct RouterSpec {
    pub(crate) route: Arc<Route>,
    pub(crate) client: crate::conn::RedisClient,
    pub(crate) backend: GroupBackend,
    pub(crate) leases: Arc<Leases>,
    pub(crate) workers: Vec<Addr<Worker>>,
    pub(crate) factory: WorkerFactory,
    pub(crate) health: Health,
    pub(crate) arbiter: ArbiterHandle,
}

impl RouterSpec {
    pub(crate) fn start(&self) -> Addr<Router> {
        let s = self.clone();
        Supervisor::start_in_arbiter(&self.arbiter, move |_| {
            Router::new(
                s.route,
                s.client,
                s.backend,
                s.leases,
                (s.workers, s.factory),
                s.health,
            )
        })
    }
}

/// A running router's address; replaced when it is started again.
pub(crate) type RouterSlot = Arc<Mutex<Addr<Router>>>;

pub(crate) struct Watchdog {
    pub(crate) routers: Vec<(RouterSpec, RouterSlot, LostSink)>,
    pub(crate) every: Duration,
}

impl Watchdog {
    fn check(&mut self) {
        for (spec, slot, lost) in &self.routers {
            let mut addr = slot.lock().unwrap_or_else(PoisonError::into_inner);
            if addr.connected() {
                continue;
            }
            let part = &spec.route.part;
            tracing::error!(router = %part, "router died; starting it again");
            spec.health.down(part, "router died; restarting");
            crate::stats::RouteStats::add(&spec.route.stats.restarts, 1);
            let hooks = &spec.route.hooks;
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hooks.router_died(part)))
                .is_err()
            {
                tracing::error!(router = %part, "the router-died hook panicked");
            }
            spec.leases.clear();
            *addr = spec.start();
            *lost.lock().unwrap_or_else(PoisonError::into_inner) = addr.clone().recipient();
        }
    }
}

impl Actor for Watchdog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |act, _| act.check());
    }
}
