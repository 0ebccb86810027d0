//! One saga as an actor: it holds the saga's last saved state and runs the cycle of
//! the state machine around I/O (flush what is owed, decide, save, publish, settle).
//!
//! Invariants:
//! - memory never runs ahead of the store: the actor adopts a state only after it
//!   was saved, and reloads from the store after any failure;
//! - an outbox left by a crash is published before any new input is looked at, so
//!   events go out in the order they were decided;
//! - each cycle runs as one unit (`AtomicResponse`): a second input waits for it;
//! - an input (a stream entry) is answered `Ok` only after the whole cycle, so a
//!   crash at any point leaves the entry pending and it is delivered again.

use std::sync::Arc;

use actix::prelude::*;

use super::definition::SagaDefinition;
use super::machine::{self, Input};
use super::pause::{Side, pause_at};
use super::state::{SagaState, SagaStore, SagaStoreError};
use crate::envelope::{Envelope, now_millis};
use crate::handler::HandlerError;
use crate::publisher::{PublishError, Publisher};

/// An instance finished: its manager forgets it. Sent to whoever owns the
/// instance (a recipient, so the instance does not name its manager).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Finished(pub(crate) String);

/// What a saga needs to act: its store, and a publisher that de-duplicates by
/// event id (the manager sets its window; the process default may be off).
#[derive(Clone)]
pub(crate) struct Io {
    /// Where its state is saved.
    pub(crate) store: Arc<dyn SagaStore>,
    /// Publishes its outbox; republishing a stored id is a no-op within the window.
    pub(crate) publisher: Publisher,
}

/// One running saga.
pub struct SagaInstance {
    /// Its definition, shared with the manager.
    def: Arc<SagaDefinition>,
    /// Store and publisher.
    io: Io,
    /// Its last saved state.
    state: SagaState,
    /// Told when the saga ends, so it forgets this actor.
    manager: Option<Recipient<Finished>>,
}

impl SagaInstance {
    pub(crate) fn new(
        def: Arc<SagaDefinition>,
        io: Io,
        state: SagaState,
        manager: Option<Recipient<Finished>>,
    ) -> Self {
        SagaInstance {
            def,
            io,
            state,
            manager,
        }
    }
}

/// An event for this saga: its start or a completion. Answered once its effects
/// are saved and published.
#[derive(Message)]
#[rtype(result = "Result<(), HandlerError>")]
pub(crate) struct Deliver(pub(crate) Envelope);

/// Something may be due (a deadline, an outbox left behind): the state the
/// manager loaded, adopted when newer than the one held.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wake(pub(crate) Option<SagaState>);

/// An input the cycle owns (the machine borrows it).
enum Owned {
    Start(Box<Envelope>),
    Event(Box<Envelope>),
    Tick,
}

impl Owned {
    fn input(&self) -> Input<'_> {
        match self {
            Owned::Start(_) => Input::Start,
            Owned::Event(e) => Input::Event(e),
            Owned::Tick => Input::Tick,
        }
    }

    /// The envelope that caused this cycle, whose trace what it decides continues.
    fn cause(&self) -> Option<&Envelope> {
        match self {
            Owned::Start(e) | Owned::Event(e) => Some(e),
            Owned::Tick => None,
        }
    }
}

impl SagaInstance {
    /// Runs one cycle and adopts its result; on failure reloads from the store.
    fn run(&mut self, input: Owned) -> ResponseActFuture<Self, Result<(), HandlerError>> {
        let fut = cycle(self.def.clone(), self.io.clone(), self.state.clone(), input);
        Box::pin(
            actix::fut::wrap_future(fut).map(|res, act: &mut Self, ctx| match res {
                Ok(state) => {
                    act.state = state;
                    if act.state.status.finished() {
                        tracing::info!(saga = %act.def.name, id = %act.state.id, status = act.state.status.as_str(), "saga finished");
                        if let Some(m) = &act.manager {
                            m.do_send(Finished(act.state.id.clone()));
                        }
                        ctx.stop();
                    }
                    Ok(())
                }
                Err(e) => {
                    // Not saved, or saved and not all published: what the store
                    // holds is the truth; the entry (or the next sweep) tries again.
                    act.reload(ctx);
                    Err(e)
                }
            }),
        )
    }

    fn reload(&mut self, ctx: &mut Context<Self>) {
        let (store, id) = (self.io.store.clone(), self.state.id.clone());
        ctx.wait(
            actix::fut::wrap_future(async move { store.load(&id).await }).map(
                |res, act: &mut Self, _| match res {
                    Ok(Some(s)) => act.state = s,
                    Ok(None) => {
                        // Never saved: the start event's redelivery starts it over.
                        let data = act.state.data.clone();
                        act.state = SagaState::new(act.state.id.clone(), act.state.saga.clone(), data);
                    }
                    Err(e) => tracing::warn!(saga = %act.def.name, id = %act.state.id, error = %e, "saga reload failed"),
                },
            ),
        );
    }
}

/// Publishes what the state owes, lets the machine decide on `input`, saves,
/// publishes that, settles. Returns the last state saved.
async fn cycle(
    def: Arc<SagaDefinition>,
    io: Io,
    state: SagaState,
    input: Owned,
) -> Result<SagaState, HandlerError> {
    let mut state = flush(&def, &io, state).await?;
    let Some(mut next) = machine::next(&def, &state, input.input(), now_ms()) else {
        return Ok(state);
    };
    next.version = state.version;
    // What the saga publishes now continues the trace of the event that caused it
    // (stored with the outbox, so a republish after a crash keeps it too).
    if let Some(cause) = input.cause() {
        for out in next
            .outbox
            .iter_mut()
            .filter(|o| o.event.traceparent.is_none())
        {
            out.event.traceparent.clone_from(&cause.traceparent);
            out.event.tracestate.clone_from(&cause.tracestate);
        }
    }
    save(&io, &mut next).await?;
    state = flush(&def, &io, next).await?;
    Ok(state)
}

/// Publishes the outbox in order, then saves the settled state (outbox empty,
/// ended if nothing is left). A no-op for a state that owes nothing.
async fn flush(def: &SagaDefinition, io: &Io, state: SagaState) -> Result<SagaState, HandlerError> {
    for out in &state.outbox {
        let ev = &out.event;
        let stream = io
            .publisher
            .catalog()
            .get(&ev.event_type)
            .map(|t| t.stream)
            .unwrap_or_default()
            .to_owned();
        pause_at(Side::Before, &ev.event_type).await;
        match io.publisher.publish(&stream, ev).await {
            Ok(p) => {
                tracing::info!(saga = %def.name, id = %state.id, kind = ?out.kind, event_type = %ev.event_type, event_id = %ev.id, duplicate = p.duplicate, "saga published");
            }
            Err(PublishError::Invalid(e)) => {
                // The definition built an event the catalog refuses: no retry can
                // publish it, and holding the outbox would stop the saga for good.
                tracing::error!(saga = %def.name, id = %state.id, event_type = %ev.event_type, error = %e, "saga event refused by the catalog; not published");
            }
            Err(e) => return Err(HandlerError::retryable(format!("saga publish: {e}"))),
        }
        pause_at(Side::After, &ev.event_type).await;
    }
    let mut settled = machine::settle(def, &state);
    if settled == state {
        return Ok(state);
    }
    save(io, &mut settled).await?;
    Ok(settled)
}

/// Saves `s` as the version after the one it was read at; the first save creates.
async fn save(io: &Io, s: &mut SagaState) -> Result<(), HandlerError> {
    s.version += 1;
    let res = if s.version == 0 {
        io.store.create(s).await
    } else {
        io.store.save(s).await
    };
    res.map_err(|e| match e {
        SagaStoreError::Conflict => {
            HandlerError::retryable("the saga changed in another process; retrying on its state")
        }
        e => HandlerError::retryable(e),
    })
}

fn now_ms() -> i64 {
    now_millis().timestamp_millis()
}

impl Actor for SagaInstance {
    type Context = Context<Self>;
}

impl Supervised for SagaInstance {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.reload(ctx);
    }
}

impl actix::Handler<Deliver> for SagaInstance {
    type Result = AtomicResponse<Self, Result<(), HandlerError>>;

    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        let env = msg.0;
        let input = if env.event_type == self.def.start_type {
            Owned::Start(Box::new(env))
        } else {
            Owned::Event(Box::new(env))
        };
        AtomicResponse::new(self.run(input))
    }
}

impl actix::Handler<Wake> for SagaInstance {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Wake, _ctx: &mut Context<Self>) -> Self::Result {
        if let Some(s) = msg.0
            && s.version > self.state.version
        {
            self.state = s;
        }
        AtomicResponse::new(Box::pin(self.run(Owned::Tick).map(
            |res, act: &mut Self, _| {
                if let Err(e) = res {
                    tracing::warn!(saga = %act.def.name, id = %act.state.id, error = %e, "saga not advanced; the next sweep tries again");
                }
            },
        )))
    }
}
