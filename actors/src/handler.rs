//! Handlers: plain async functions on a typed event, and the error type that tells
//! the engine whether a failure is worth another attempt.
//!
//! A handler knows nothing of actors or Redis; it can be called directly in a unit
//! test. The engine wraps it (decode, timeout, panic capture, retry, dead letter).

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;

use crate::catalog::EventType;
use crate::envelope::Envelope;

/// Why a handler did not finish its work. Retryable or permanent is part of the
/// type: the retry layer reads it, nobody matches on message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth another attempt (a timeout, a service that is down).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (bad input): dead-letter it now.
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn retryable(e: impl std::fmt::Display) -> Self {
        HandlerError::Retryable(e.to_string())
    }

    /// A failure that no retry fixes.
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        HandlerError::Permanent(e.to_string())
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Retryable(_))
    }
}

/// A decoded event of a known type: the envelope (metadata and raw payload), the
/// typed payload, and where and how often it was delivered.
#[derive(Debug, Clone)]
pub struct Event<T> {
    /// Id, type, version, correlation, trace context, and the payload as JSON.
    pub envelope: Envelope,
    /// The typed payload.
    pub data: T,
    /// The Redis entry id (stream order).
    pub entry_id: String,
    /// The stream it was read from (without prefix).
    pub stream: String,
    /// This attempt's number, 1 for the first delivery.
    pub attempt: u32,
}

/// One delivery of an entry to a handler, undecoded beyond the envelope.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub envelope: Envelope,
    /// The Redis entry id (stream order).
    pub entry_id: String,
    /// The stream it was read from (without prefix).
    pub stream: String,
    /// This attempt's number, 1 for the first delivery.
    pub attempt: u32,
}

/// What a handler call returns.
pub type HandlerFuture = LocalBoxFuture<'static, Result<(), HandlerError>>;

/// A type-erased handler, cheap to clone and to send to any worker thread.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use strategist_actors::{EventType, Handler, HandlerError};
///
/// #[derive(Serialize, Deserialize)]
/// struct Pinged { n: u32 }
/// impl EventType for Pinged {
///     const TYPE: &'static str = "system.ping";
///     const STREAM: &'static str = "system.events";
/// }
/// let h = Handler::typed(|ev: strategist_actors::Event<Pinged>| async move {
///     if ev.data.n > 10 { return Err(HandlerError::permanent("too big")) }
///     Ok(())
/// });
/// # let _ = h;
/// ```
#[derive(Clone)]
pub struct Handler(Arc<dyn Fn(Delivery) -> HandlerFuture + Send + Sync>);

impl Handler {
    /// A handler of one typed event. A payload that does not decode as `T` is a
    /// permanent failure (the router has already checked it against the catalog, so
    /// this only happens when the handler's type and the catalog disagree).
    pub fn typed<T, F, Fut>(f: F) -> Self
    where
        T: EventType,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + 'static,
    {
        let f = Arc::new(f);
        Handler(Arc::new(move |d: Delivery| {
            let f = f.clone();
            match T::deserialize(&d.envelope.data) {
                Ok(data) => f(Event {
                    envelope: d.envelope,
                    data,
                    entry_id: d.entry_id,
                    stream: d.stream,
                    attempt: d.attempt,
                })
                .boxed_local(),
                Err(e) => {
                    let msg = format!("payload does not decode as {}: {e}", T::TYPE);
                    async move { Err(HandlerError::Permanent(msg)) }.boxed_local()
                }
            }
        }))
    }

    /// A handler of raw deliveries, for consumers that take every type (the
    /// archiver, a tail).
    pub fn raw<F, Fut>(f: F) -> Self
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + 'static,
    {
        Handler(Arc::new(move |d| f(d).boxed_local()))
    }

    /// Calls the handler.
    pub fn call(&self, delivery: Delivery) -> HandlerFuture {
        (self.0)(delivery)
    }
}
