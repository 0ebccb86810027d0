//! The saga runtime: multi-step workflows of publish-and-wait steps, with timeouts,
//! retries and compensations, that survive crashes (the design's Saga pattern).
//!
//! A [`SagaDefinition`] lists steps. Each step publishes a request with the saga's
//! correlation id and waits for its completion event (or only publishes). A step
//! that fails for good (its completion says so, or its timeout passes `retries`
//! times) runs the compensations of the steps already done, in reverse, then the
//! definition's failure event (`handleSagaFailure`).
//!
//! One [`SagaInstance`] actor per running saga (keyed by its correlation id), under
//! a supervisor, owned by the [`SagaManager`] of its definition. Invariants:
//! - the saga's state is saved before each step's request is published, and the
//!   request's event id is saved with it: after a crash, resuming publishes the
//!   same id again, which the publisher's de-duplication turns into a no-op when the
//!   first publish had gone out;
//! - a completion is acked only after the transition it causes is saved, so a
//!   completion that arrives while no process runs waits in Redis;
//! - saves are conditional on the version read (optimistic concurrency), so two
//!   processes cannot both advance one saga.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ulid::Ulid;

use crate::envelope::{Envelope, now_millis};
use crate::handler::{Delivery, Handler, HandlerError};
use crate::pool::{Pool, PoolOptions};
use crate::publisher::Publisher;

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Working through its steps.
    Running,
    /// A step failed for good; compensating the steps done.
    Compensating,
    /// Every step succeeded.
    Completed,
    /// Compensated and reported.
    Failed,
}

impl SagaStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => SagaStatus::Running,
            "compensating" => SagaStatus::Compensating,
            "completed" => SagaStatus::Completed,
            "failed" => SagaStatus::Failed,
            _ => return None,
        })
    }

    /// Whether the saga has ended.
    pub fn finished(self) -> bool {
        matches!(self, SagaStatus::Completed | SagaStatus::Failed)
    }
}

/// What happened at one step, for the saga's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub step: String,
    /// `requested`, `completed`, `retried`, `timed_out`, `failed`, `compensated`.
    pub what: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// A detail (an error, an event id).
    pub detail: Option<String>,
}

/// The durable state of one saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaState {
    /// The saga's correlation id.
    pub id: String,
    /// The definition's name.
    pub saga: String,
    /// Where it is.
    pub status: SagaStatus,
    /// The current step (while running) or the step being compensated.
    pub step: usize,
    /// The saga's data (from the start event, merged with completions).
    pub data: Value,
    /// Attempts of the current step.
    pub attempts: u32,
    /// When the current step times out, ms since the epoch (0: no wait).
    pub deadline_ms: i64,
    /// The event id of the current step's request (republished with the same id).
    pub request_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// What happened, step by step.
    pub history: Vec<StepRecord>,
    /// Incremented by every save; a save expects the version it read.
    pub version: i64,
}

/// Why a saga store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SagaStoreError {
    /// Another process saved the saga since it was read.
    #[error("the saga changed since it was read")]
    Conflict,
    /// The store failed.
    #[error("saga store: {0}")]
    Store(String),
}

/// Where saga states live (a database table in the application).
pub trait SagaStore: Send + Sync + 'static {
    /// Inserts a new saga (`version` 0); `Conflict` when it exists.
    fn create(&self, s: &SagaState) -> BoxFuture<'static, Result<(), SagaStoreError>>;
    /// Saves `s` if the stored version is `s.version - 1`.
    fn save(&self, s: &SagaState) -> BoxFuture<'static, Result<(), SagaStoreError>>;
    /// Loads one saga.
    fn load(&self, id: &str) -> BoxFuture<'static, Result<Option<SagaState>, SagaStoreError>>;
    /// Every unfinished saga of a definition.
    fn unfinished(&self, saga: &str) -> BoxFuture<'static, Result<Vec<SagaState>, SagaStoreError>>;
}

/// Builds an event (a request, a compensation, a notification) from the saga data.
pub type Build = Arc<dyn Fn(&Value) -> Option<Envelope> + Send + Sync>;
/// Reads a completion: `Ok` with data to merge into the saga's, or `Err` with why
/// the step failed. `None` when the event is not this step's completion after all
/// (another kind of processing with the same type).
pub type Complete = Arc<dyn Fn(&Envelope) -> Option<Result<Value, String>> + Send + Sync>;

/// Builds the failure report from the saga data and the error.
pub type Report = Arc<dyn Fn(&Value, &str) -> Option<Envelope> + Send + Sync>;

/// One step.
#[derive(Clone)]
pub struct SagaStep {
    /// Its name.
    pub name: String,
    /// Its request.
    pub request: Build,
    /// The completion event type it waits for; `None` for a step that only
    /// publishes.
    pub completion: Option<String>,
    /// Reads the completion.
    pub on_complete: Complete,
    /// How long to wait for the completion.
    pub timeout: Duration,
    /// Attempts after the first before the step fails.
    pub retries: u32,
    /// The event that undoes this step, published when a later step fails.
    pub compensation: Option<Build>,
}

/// A saga's definition.
#[derive(Clone)]
pub struct SagaDefinition {
    /// Its name (also its consumer group's).
    pub name: String,
    /// The stream its events are on (start and completions).
    pub stream: String,
    /// The event type that starts one.
    pub start_type: String,
    /// The saga data taken from the start event.
    pub start_data: Arc<dyn Fn(&Envelope) -> Value + Send + Sync>,
    /// The steps, in order.
    pub steps: Vec<SagaStep>,
    /// The event published after compensating (`handleSagaFailure`), given the data
    /// and the error.
    pub on_failure: Option<Report>,
}

/// Starts a saga definition: its manager actor and the pool that feeds it.
///
/// The pool handles the start type and every completion type on the definition's
/// stream; add it to the engine's pools.
pub fn start(
    def: SagaDefinition,
    store: Arc<dyn SagaStore>,
    publisher: Publisher,
    options: PoolOptions,
) -> (Addr<SagaManager>, Pool) {
    let def = Arc::new(def);
    let manager = SagaManager {
        def: def.clone(),
        store,
        publisher,
        instances: HashMap::new(),
        me: None,
    }
    .start();
    let mut pool = Pool::new(def.name.clone(), options);
    let mut types = vec![def.start_type.clone()];
    types.extend(def.steps.iter().filter_map(|s| s.completion.clone()));
    types.dedup();
    let m = manager.clone();
    let handler = Handler::raw(move |d: Delivery| {
        let m = m.clone();
        async move {
            match m.send(Route(d.envelope)).await {
                Ok(r) => r,
                Err(e) => Err(HandlerError::retryable(format!("saga manager: {e}"))),
            }
        }
    });
    for t in types {
        pool.handle(&def.stream, &t, handler.clone());
    }
    (manager, pool)
}

/// Owns the running instances of one definition in this process.
pub struct SagaManager {
    def: Arc<SagaDefinition>,
    store: Arc<dyn SagaStore>,
    publisher: Publisher,
    instances: HashMap<String, Addr<SagaInstance>>,
    /// Its own address, handed to instances so they can say they finished.
    me: Option<Addr<SagaManager>>,
}

/// An instance finished: forget it.
#[derive(Message)]
#[rtype(result = "()")]
struct Finished(String);

impl actix::Handler<Finished> for SagaManager {
    type Result = ();

    fn handle(&mut self, msg: Finished, _ctx: &mut Context<Self>) {
        self.instances.remove(&msg.0);
    }
}

impl SagaManager {
    fn instance(&mut self, state: SagaState) -> Addr<SagaInstance> {
        let id = state.id.clone();
        if let Some(a) = self.instances.get(&id).filter(|a| a.connected()) {
            return a.clone();
        }
        let (def, store, publisher) =
            (self.def.clone(), self.store.clone(), self.publisher.clone());
        let manager = self.me.clone();
        let addr = Supervisor::start(move |_| SagaInstance {
            def,
            store,
            publisher,
            state,
            timer: None,
            manager,
        });
        self.instances.insert(id, addr.clone());
        addr
    }
}

impl Actor for SagaManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        self.resume_all(ctx);
    }
}

impl SagaManager {
    /// Resumes every unfinished saga: each picks up at its last recorded step. While
    /// the store cannot answer, tries again every few seconds.
    fn resume_all(&mut self, ctx: &mut Context<Self>) {
        let (store, name) = (self.store.clone(), self.def.name.clone());
        ctx.spawn(
            actix::fut::wrap_future(async move { store.unfinished(&name).await }).map(
                |res, act: &mut Self, ctx| match res {
                    Ok(list) => {
                        for s in list {
                            if !act.instances.contains_key(&s.id) {
                                act.instance(s).do_send(Resume);
                            }
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
}

/// An event for the saga whose correlation id it carries (or that it starts).
#[derive(Message)]
#[rtype(result = "Result<(), HandlerError>")]
struct Route(Envelope);

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
        let store = self.store.clone();
        let def = self.def.clone();
        let load = async move {
            match store.load(&id).await {
                Ok(Some(s)) => Ok(Some(s)),
                Ok(None) if is_start => Ok(Some(SagaState {
                    id,
                    saga: def.name.clone(),
                    status: SagaStatus::Running,
                    step: 0,
                    data: (def.start_data)(&env),
                    attempts: 0,
                    deadline_ms: 0,
                    request_id: None,
                    error: None,
                    history: Vec::new(),
                    version: -1,
                })),
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

/// One running saga.
pub struct SagaInstance {
    def: Arc<SagaDefinition>,
    store: Arc<dyn SagaStore>,
    publisher: Publisher,
    state: SagaState,
    timer: Option<SpawnHandle>,
    manager: Option<Addr<SagaManager>>,
}

#[derive(Message)]
#[rtype(result = "Result<(), HandlerError>")]
struct Deliver(Envelope);

#[derive(Message)]
#[rtype(result = "()")]
struct Resume;

/// What an instance does next, decided from its state.
enum Next {
    /// Save, then publish this step's request and wait.
    Request,
    /// Save, publish this compensation, go on compensating.
    Compensate,
    /// Save and stop.
    Finish,
}

impl SagaInstance {
    fn record(&mut self, what: &str, detail: Option<String>) {
        let step = self
            .def
            .steps
            .get(self.state.step)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        self.state.history.push(StepRecord {
            step,
            what: what.into(),
            at_ms: now_millis().timestamp_millis(),
            detail,
        });
    }

    /// Moves the saga forward as far as it can without waiting, saving before every
    /// publish. Runs as one unit (the actor waits for it).
    fn advance(
        &mut self,
        ctx: &mut Context<Self>,
        resumed: bool,
    ) -> ResponseActFuture<Self, Result<(), HandlerError>> {
        let plan = self.plan(resumed);
        let Some((next, env)) = plan else {
            self.schedule_timeout(ctx);
            return Box::pin(actix::fut::ready(Ok(())));
        };
        self.state.version += 1;
        let snapshot = self.state.clone();
        let store = self.store.clone();
        let publisher = self.publisher.clone();
        let fut = async move {
            let saved = if snapshot.version == 0 {
                store.create(&snapshot).await
            } else {
                store.save(&snapshot).await
            };
            saved.map_err(HandlerError::retryable)?;
            if let Some(env) = env {
                let stream = publisher
                    .catalog()
                    .get(&env.event_type)
                    .map(|t| t.stream)
                    .unwrap_or_default()
                    .to_owned();
                publisher
                    .publish(&stream, &env)
                    .await
                    .map_err(HandlerError::retryable)?;
            }
            Ok::<_, HandlerError>(())
        };
        Box::pin(actix::fut::wrap_future(fut).then(move |res, act: &mut Self, ctx| {
            let more: ResponseActFuture<Self, Result<(), HandlerError>> = match res {
                Err(e) => {
                    // Not saved or not published: reload from the store so memory
                    // never runs ahead of it; the entry is retried.
                    act.reload(ctx);
                    Box::pin(actix::fut::ready(Err(e)))
                }
                Ok(()) => match next {
                    Next::Finish => {
                        tracing::info!(saga = %act.def.name, id = %act.state.id, status = act.state.status.as_str(), "saga finished");
                        if let Some(m) = &act.manager {
                            m.do_send(Finished(act.state.id.clone()));
                        }
                        ctx.stop();
                        Box::pin(actix::fut::ready(Ok(())))
                    }
                    Next::Request => {
                        if act.def.steps[act.state.step].completion.is_none() {
                            // A publish-only step is done once published.
                            act.record("completed", None);
                            act.state.step += 1;
                            act.state.attempts = 0;
                            act.state.request_id = None;
                            act.advance(ctx, false)
                        } else {
                            act.schedule_timeout(ctx);
                            Box::pin(actix::fut::ready(Ok(())))
                        }
                    }
                    Next::Compensate => act.advance(ctx, false),
                },
            };
            more
        }))
    }

    /// Decides the next save-and-publish from the state, updating the state for it.
    fn plan(&mut self, resumed: bool) -> Option<(Next, Option<Envelope>)> {
        match self.state.status {
            SagaStatus::Running => {
                if self.state.step >= self.def.steps.len() {
                    self.state.status = SagaStatus::Completed;
                    self.state.deadline_ms = 0;
                    return Some((Next::Finish, None));
                }
                // Waiting for a completion already requested: nothing to do, unless
                // resuming after a crash (the request may not have gone out).
                if self.state.request_id.is_some() && !resumed {
                    return None;
                }
                let step = self.def.steps[self.state.step].clone();
                let Some(mut env) = (step.request)(&self.state.data) else {
                    self.mark_failed(format!("step {} could not build its request", step.name));
                    return self.plan(false);
                };
                let id = match &self.state.request_id {
                    Some(id) => id.parse().unwrap_or_else(|_| Ulid::generate()),
                    None => {
                        self.state.attempts += 1;
                        self.record("requested", None);
                        Ulid::generate()
                    }
                };
                env.id = id;
                env.correlation_id = Some(self.state.id.clone());
                self.state.request_id = Some(id.to_string());
                self.state.deadline_ms = if step.completion.is_some() {
                    now_millis().timestamp_millis() + step.timeout.as_millis() as i64
                } else {
                    0
                };
                Some((Next::Request, Some(env)))
            }
            SagaStatus::Compensating => {
                // Compensate the steps before `step`, last first.
                while self.state.step > 0 {
                    self.state.step -= 1;
                    let step = self.def.steps[self.state.step].clone();
                    if let Some(build) = &step.compensation
                        && let Some(mut env) = build(&self.state.data)
                    {
                        env.correlation_id = Some(self.state.id.clone());
                        self.record("compensated", Some(env.event_type.clone()));
                        return Some((Next::Compensate, Some(env)));
                    }
                }
                self.state.status = SagaStatus::Failed;
                self.state.deadline_ms = 0;
                let error = self.state.error.clone().unwrap_or_default();
                let report = self
                    .def
                    .on_failure
                    .as_ref()
                    .and_then(|f| f(&self.state.data, &error))
                    .map(|mut e| {
                        e.correlation_id = Some(self.state.id.clone());
                        e
                    });
                Some((Next::Finish, report))
            }
            SagaStatus::Completed | SagaStatus::Failed => None,
        }
    }

    /// The current step failed for good: compensate the steps before it.
    fn mark_failed(&mut self, error: String) {
        self.record("failed", Some(error.clone()));
        self.state.error = Some(error);
        self.state.status = SagaStatus::Compensating;
        self.state.request_id = None;
        self.state.deadline_ms = 0;
    }

    fn schedule_timeout(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        if self.state.status != SagaStatus::Running || self.state.deadline_ms == 0 {
            return;
        }
        let wait = (self.state.deadline_ms - now_millis().timestamp_millis()).max(0) as u64;
        self.timer = Some(ctx.run_later(Duration::from_millis(wait), |act, ctx| {
            act.timer = None;
            let fut = act.on_timeout(ctx).map(|_, _, _| ());
            ctx.wait(fut);
        }));
    }

    fn on_timeout(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<(), HandlerError>> {
        if self.state.status != SagaStatus::Running || self.state.deadline_ms == 0 {
            return Box::pin(actix::fut::ready(Ok(())));
        }
        let step = self.def.steps[self.state.step].clone();
        self.record("timed_out", None);
        if self.state.attempts > step.retries {
            self.mark_failed(format!(
                "step {} timed out {} times",
                step.name, self.state.attempts
            ));
        } else {
            self.record("retried", None);
            self.state.request_id = None;
        }
        self.advance(ctx, false)
    }

    fn reload(&mut self, ctx: &mut Context<Self>) {
        let (store, id) = (self.store.clone(), self.state.id.clone());
        ctx.wait(
            actix::fut::wrap_future(async move { store.load(&id).await }).map(
                |res, act: &mut Self, ctx| match res {
                    Ok(Some(s)) => {
                        act.state = s;
                        act.schedule_timeout(ctx);
                    }
                    Ok(None) => {
                        // Never saved: start over from the start event's redelivery.
                        act.state.version = -1;
                        act.state.history.clear();
                        act.state.attempts = 0;
                        act.state.request_id = None;
                    }
                    Err(e) => tracing::warn!(error = %e, "saga reload failed"),
                },
            ),
        );
    }
}

impl Actor for SagaInstance {
    type Context = Context<Self>;
}

impl Supervised for SagaInstance {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        self.reload(ctx);
    }
}

impl actix::Handler<Deliver> for SagaInstance {
    type Result = AtomicResponse<Self, Result<(), HandlerError>>;

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) -> Self::Result {
        let env = msg.0;
        if env.event_type == self.def.start_type {
            // A new saga advances; a redelivered start of a known saga changes nothing.
            let fresh = self.state.version < 0;
            return AtomicResponse::new(if fresh {
                self.advance(ctx, false)
            } else {
                Box::pin(actix::fut::ready(Ok(())))
            });
        }
        if self.state.status != SagaStatus::Running {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))));
        }
        let Some(step) = self.def.steps.get(self.state.step).cloned() else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))));
        };
        if step.completion.as_deref() != Some(env.event_type.as_str()) {
            // A late or early completion of another step: nothing to do.
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))));
        }
        let fut = match (step.on_complete)(&env) {
            None => Box::pin(actix::fut::ready(Ok(()))) as ResponseActFuture<Self, _>,
            Some(Ok(more)) => {
                if let (Value::Object(data), Value::Object(more)) = (&mut self.state.data, more) {
                    data.extend(more);
                }
                self.record("completed", Some(env.id.to_string()));
                self.state.step += 1;
                self.state.attempts = 0;
                self.state.request_id = None;
                self.state.deadline_ms = 0;
                self.advance(ctx, false)
            }
            Some(Err(error)) => {
                if self.state.attempts <= step.retries {
                    self.record("retried", Some(error));
                    self.state.request_id = None;
                    self.advance(ctx, false)
                } else {
                    self.mark_failed(error);
                    self.advance(ctx, false)
                }
            }
        };
        AtomicResponse::new(fut)
    }
}

impl actix::Handler<Resume> for SagaInstance {
    type Result = ();

    fn handle(&mut self, _: Resume, ctx: &mut Context<Self>) {
        tracing::info!(saga = %self.def.name, id = %self.state.id, step = self.state.step, "resuming saga");
        let fut = self.advance(ctx, true).map(|res, act: &mut Self, _| {
            if let Err(e) = res {
                tracing::warn!(saga = %act.def.name, id = %act.state.id, error = %e, "resume failed; will retry on the next event or timeout");
            }
        });
        ctx.wait(fut);
    }
}
