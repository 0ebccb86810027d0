//! The manager of one definition in one process: routes each event to its saga's
//! instance (loading or creating it), and sweeps the store for sagas that are due.
//!
//! Why a sweep: a saga's deadline is in the store, not in the memory of the process
//! that started it. Every live process looks, every `sweep_interval`, for unfinished
//! sagas whose deadline passed (or whose outbox was left behind by a process that
//! may be gone) and advances them; the versioned save lets only one process act on
//! each, the others reload and find nothing left to do. So a saga is timed out even
//! when the process that started it never comes back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;

use super::definition::SagaDefinition;
use super::instance::{Deliver, Finished, Io, SagaInstance, Wake};
use super::state::SagaState;
use crate::envelope::{Envelope, now_millis};
use crate::handler::HandlerError;

/// How a manager runs its sagas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaOptions {
    /// How often the store is searched for due sagas; the lateness of a timeout is
    /// at most about this.
    pub sweep_interval: Duration,
    /// An outbox still not empty this long after its save is published by whoever
    /// sweeps next (its process may be gone). Publishing it twice is harmless.
    pub stale_outbox_after: Duration,
    /// At most this many due sagas are taken per sweep.
    pub sweep_batch: usize,
    /// How long the saga's publisher remembers an event id, so that republishing
    /// an outbox after a crash adds nothing. Set here, not taken from the process's
    /// publisher, whose de-duplication may be off.
    pub dedupe_window: Duration,
}

impl Default for SagaOptions {
    fn default() -> Self {
        SagaOptions {
            sweep_interval: Duration::from_secs(1),
            stale_outbox_after: Duration::from_secs(10),
            sweep_batch: 100,
            dedupe_window: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl SagaOptions {
    /// The defaults, with a sweep a quarter of the shortest step timeout (between
    /// 50 ms and 5 s), so a timeout is late by a fraction of itself at most.
    pub fn for_definition(def: &SagaDefinition) -> Self {
        let sweep_interval = def
            .shortest_timeout()
            .map(|t| (t / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)))
            .unwrap_or(Duration::from_secs(5));
        SagaOptions {
            sweep_interval,
            ..SagaOptions::default()
        }
    }
}

/// Owns the running instances of one definition in this process.
pub struct SagaManager {
    /// The definition, shared with every instance.
    def: Arc<SagaDefinition>,
    /// Store and de-duplicating publisher, cloned into every instance.
    io: Io,
    /// Sweep timing and publisher window.
    options: SagaOptions,
    /// The instances alive in this process, by saga id.
    instances: HashMap<String, Addr<SagaInstance>>,
    /// Its own address, handed to instances so they can say they finished.
    me: Option<Addr<SagaManager>>,
    /// A sweep is in flight: the next tick skips instead of piling up queries on a
    /// slow database.
    sweeping: bool,
}

impl SagaManager {
    pub(crate) fn new(def: Arc<SagaDefinition>, io: Io, options: SagaOptions) -> Self {
        SagaManager {
            def,
            io,
            options,
            instances: HashMap::new(),
            me: None,
            sweeping: false,
        }
    }

    fn instance(&mut self, state: SagaState) -> Addr<SagaInstance> {
        let id = state.id.clone();
        if let Some(a) = self.instances.get(&id).filter(|a| a.connected()) {
            return a.clone();
        }
        let manager = self.me.clone().map(Addr::recipient);
        let (def, io) = (self.def.clone(), self.io.clone());
        let addr = Supervisor::start(move |_| SagaInstance::new(def, io, state, manager));
        self.instances.insert(id, addr.clone());
        addr
    }

    /// Wakes `state`'s instance (made if needed) with the state just loaded.
    fn wake(&mut self, state: SagaState) {
        self.instance(state.clone()).do_send(Wake(Some(state)));
    }

    /// At start: every unfinished saga with something due now (an outbox a crash
    /// left, a deadline passed while no process ran) is taken up at once, without
    /// waiting for the outbox to look stale. While the store cannot answer, tries
    /// again every few seconds; the sweep covers the rest.
    fn resume_all(&mut self, ctx: &mut Context<Self>) {
        let (store, name) = (self.io.store.clone(), self.def.name.clone());
        ctx.spawn(
            actix::fut::wrap_future(async move { store.unfinished(&name).await }).map(
                |res, act: &mut Self, ctx| match res {
                    Ok(list) => {
                        let now = now_millis().timestamp_millis();
                        for s in list.into_iter().filter(|s| s.due(now)) {
                            tracing::info!(saga = %act.def.name, id = %s.id, step = s.step, status = s.status.as_str(), "resuming saga");
                            act.wake(s);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(saga = %act.def.name, error = %e, "cannot load unfinished sagas yet; retrying");
                        ctx.run_later(Duration::from_secs(2), |act, ctx| act.resume_all(ctx));
                    }
                },
            ),
        );
    }

    /// Looks for due sagas and wakes each. See the module docs for why.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let now = now_millis().timestamp_millis();
        let stale = i64::try_from(self.options.stale_outbox_after.as_millis()).unwrap_or(i64::MAX);
        let due = self.io.store.due(
            &self.def.name,
            now,
            now.saturating_sub(stale),
            self.options.sweep_batch,
        );
        ctx.spawn(actix::fut::wrap_future(due).map(|res, act: &mut Self, _| {
            act.sweeping = false;
            match res {
                Ok(list) => {
                    for s in list {
                        tracing::debug!(saga = %act.def.name, id = %s.id, "saga due");
                        act.wake(s);
                    }
                }
                Err(e) => {
                    tracing::warn!(saga = %act.def.name, error = %e, "cannot look for due sagas")
                }
            }
        }));
    }
}

impl Actor for SagaManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        self.resume_all(ctx);
        ctx.run_interval(self.options.sweep_interval, |act, ctx| act.sweep(ctx));
    }
}

impl actix::Handler<Finished> for SagaManager {
    type Result = ();

    fn handle(&mut self, msg: Finished, _ctx: &mut Context<Self>) {
        self.instances.remove(&msg.0);
    }
}

/// An event for the saga whose correlation id it carries (or that it starts).
#[derive(Message)]
#[rtype(result = "Result<(), HandlerError>")]
pub(crate) struct Route(pub(crate) Envelope);

impl actix::Handler<Route> for SagaManager {
    type Result = ResponseActFuture<Self, Result<(), HandlerError>>;

    fn handle(&mut self, msg: Route, _ctx: &mut Context<Self>) -> Self::Result {
        let env = msg.0;
        let is_start = env.event_type == self.def.start_type;
        let id = if is_start {
            env.correlation_id
                .clone()
                .unwrap_or_else(|| env.id.to_string())
        } else {
            match env.correlation_id.clone() {
                Some(c) => c,
                // A completion of no saga: not ours.
                None => return Box::pin(actix::fut::ready(Ok(()))),
            }
        };
        if let Some(a) = self.instances.get(&id).filter(|a| a.connected()).cloned() {
            return Box::pin(actix::fut::wrap_future(forward(a, env)));
        }
        let store = self.io.store.clone();
        let def = self.def.clone();
        let load = async move {
            match store.load(&id).await {
                Ok(Some(s)) => Ok(Some(s)),
                Ok(None) if is_start => Ok(Some(SagaState::new(
                    id,
                    def.name.clone(),
                    (def.start_data)(&env),
                ))),
                Ok(None) => Ok(None),
                Err(e) => Err(HandlerError::retryable(e)),
            }
            .map(|s| (s, env))
        };
        Box::pin(
            actix::fut::wrap_future(load).then(|res, act: &mut Self, _| {
                let out: BoxFuture<'static, Result<(), HandlerError>> = match res {
                    Err(e) => Box::pin(async move { Err(e) }),
                    Ok((None, _)) => Box::pin(async { Ok(()) }),
                    Ok((Some(state), env)) => {
                        let a = act.instance(state);
                        Box::pin(forward(a, env))
                    }
                };
                actix::fut::wrap_future(out)
            }),
        )
    }
}

async fn forward(a: Addr<SagaInstance>, env: Envelope) -> Result<(), HandlerError> {
    match a.send(Deliver(env)).await {
        Ok(r) => r,
        Err(e) => Err(HandlerError::retryable(format!("saga instance: {e}"))),
    }
}
