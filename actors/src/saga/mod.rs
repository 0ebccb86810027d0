//! The saga runtime: multi-step workflows of publish-and-wait steps, with timeouts,
//! retries and compensations, that survive crashes (the design's Saga pattern).
//!
//! A [`SagaDefinition`] lists steps. Each step publishes a request with the saga's
//! correlation id and waits for its completion event (or only publishes). A step
//! that fails for good (its completion says so, or its timeout passes `retries`
//! times) publishes the compensations of the steps already done, in reverse, then
//! the definition's failure event (`handleSagaFailure`).
//!
//! # Layout
//! - `state`: [`SagaStatus`], [`StepRecord`], [`SagaState`] with its outbox, the
//!   [`SagaStore`] trait and its error; the invariants of what is saved when.
//! - `definition`: [`SagaStep`], [`SagaDefinition`].
//! - `machine`: the pure state machine (state + input -> state with events to
//!   publish), unit-tested without Redis.
//! - `instance`: [`SagaInstance`], one actor per saga running the machine's cycle
//!   around the store and the publisher.
//! - `manager`: [`SagaManager`], one per definition and process: routes events to
//!   instances and sweeps the store for due sagas; [`SagaOptions`].
//! - `pause`: a test hook that stops a saga before or after a publish.
//!
//! # Guarantees
//! - Every event a saga decides to publish (request, compensation, report) is saved
//!   with its event id in the saga's outbox before it is published, and the outbox
//!   is marked done only after it went out. A crash at any point leaves either the
//!   input unacked (it comes again) or the outbox saved (it is published again, with
//!   the same ids): each event goes out once in effect. The manager's publisher
//!   de-duplicates by event id with its own window ([`SagaOptions::dedupe_window`]),
//!   whatever the process default; past the window, consumers drop a repeat by id.
//! - A step's deadline is saved when its request is issued and enforced by every
//!   live process's sweep, not by a timer in the process that started the saga.
//! - Saves are conditional on the version read, so two processes cannot both
//!   advance one saga.

mod definition;
mod instance;
mod machine;
mod manager;
mod pause;
mod state;

use std::sync::Arc;

use crate::handler::{Delivery, Handler, HandlerError};
use crate::pool::{Pool, PoolOptions};
use crate::publisher::Publisher;

pub use definition::{Build, Complete, Report, SagaDefinition, SagaStep};
pub use instance::SagaInstance;
pub use manager::{SagaManager, SagaOptions};
pub use state::{
    Outgoing, OutgoingKind, SagaState, SagaStatus, SagaStore, SagaStoreError, StepRecord,
};

use instance::Io;
use manager::Route;

/// Starts a saga definition with the options derived from it
/// ([`SagaOptions::for_definition`]): its manager actor and the pool that feeds it.
///
/// The pool handles the start type and every completion type on the definition's
/// stream; add it to the engine's pools.
pub fn start(
    def: SagaDefinition,
    store: Arc<dyn SagaStore>,
    publisher: Publisher,
    options: PoolOptions,
) -> (actix::Addr<SagaManager>, Pool) {
    let saga_options = SagaOptions::for_definition(&def);
    start_with(def, store, publisher, options, saga_options)
}

/// [`start`] with explicit [`SagaOptions`].
pub fn start_with(
    def: SagaDefinition,
    store: Arc<dyn SagaStore>,
    publisher: Publisher,
    options: PoolOptions,
    saga_options: SagaOptions,
) -> (actix::Addr<SagaManager>, Pool) {
    use actix::Actor;

    let def = Arc::new(def);
    let window = u64::try_from(saga_options.dedupe_window.as_millis()).unwrap_or(u64::MAX);
    let io = Io {
        store,
        publisher: publisher.with_dedupe_window_ms(window.max(1)),
    };
    let manager = SagaManager::new(def.clone(), io, saga_options).start();
    let mut pool = Pool::new(def.name.clone(), options);
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
    for t in def.handled_types() {
        pool.handle(&def.stream, &t, handler.clone());
    }
    (manager, pool)
}
