//! The worker actor: runs one handler call at a time, with its timeout, and turns a
//! panic into an outcome instead of a dead arbiter. A call can be cancelled from
//! outside (its lease went to another consumer).
//!
//! Invariants: a worker never acks anything (its router does, after the outcome);
//! after a panic it stops itself so its `Supervisor` restarts it in place (the same
//! `Addr` keeps working, queued deliveries are kept); past its restart budget it
//! reports a crash loop and pauses before taking more work.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::{AbortRegistration, Abortable};

use crate::budget::RestartBudget;
use crate::dispose::Outcome;
use crate::handler::{Delivery, Handler};
use crate::health::Health;
use crate::hooks::Hooks;

/// One handler call to make.
#[derive(Message)]
#[rtype(result = "Outcome")]
pub(crate) struct Deliver {
    /// The span the handler runs in (its own root, linked to the entry's trace).
    pub(crate) span: tracing::Span,
    pub(crate) delivery: Delivery,
    pub(crate) handler: Handler,
    pub(crate) timeout: Duration,
    /// Cancels the call when its entry is no longer this consumer's.
    pub(crate) abort: AbortRegistration,
}

pub(crate) struct Worker {
    /// Its line on the health board.
    part: String,
    budget: RestartBudget,
    max_restarts: u32,
    cooldown: Duration,
    health: Health,
    hooks: Hooks,
}

impl Worker {
    pub(crate) fn new(
        part: String,
        max_restarts: u32,
        window: Duration,
        cooldown: Duration,
        health: Health,
        hooks: Hooks,
    ) -> Self {
        Worker {
            part,
            budget: RestartBudget::new(max_restarts, window),
            max_restarts,
            cooldown,
            health,
            hooks,
        }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Supervised for Worker {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        if !self.budget.record() {
            return;
        }
        tracing::error!(
            worker = %self.part,
            cooldown_ms = self.cooldown.as_millis() as u64,
            "worker is in a crash loop; pausing it"
        );
        self.health
            .down(&self.part, "crash loop: restarted too often");
        self.hooks.crash_loop(&self.part, self.max_restarts + 1);
        // `wait` holds the mailbox: nothing runs on this worker until the pause ends.
        ctx.wait(
            actix::fut::wrap_future(tokio::time::sleep(self.cooldown)).map(
                |_, act: &mut Self, _| {
                    act.budget.reset();
                    act.health.up(&act.part);
                },
            ),
        );
    }
}

impl actix::Handler<Deliver> for Worker {
    type Result = AtomicResponse<Self, Outcome>;

    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        let Deliver {
            span,
            delivery,
            handler,
            timeout,
            abort,
        } = msg;
        let run = async move {
            let call = || span.in_scope(|| handler.call(delivery));
            let fut = match std::panic::catch_unwind(AssertUnwindSafe(call)) {
                Ok(f) => f,
                Err(p) => return Outcome::Panicked(panic_message(p.as_ref())),
            };
            let fut = tracing::Instrument::instrument(fut, span);
            let guarded = Abortable::new(AssertUnwindSafe(fut).catch_unwind(), abort);
            match tokio::time::timeout(timeout, guarded).await {
                Err(_) => Outcome::TimedOut(timeout),
                Ok(Err(_aborted)) => Outcome::Cancelled,
                Ok(Ok(Err(p))) => Outcome::Panicked(panic_message(p.as_ref())),
                Ok(Ok(Ok(Ok(())))) => Outcome::Done,
                Ok(Ok(Ok(Err(e)))) => Outcome::Failed(e),
            }
        };
        AtomicResponse::new(Box::pin(actix::fut::wrap_future(run).map(
            |out, _act: &mut Self, ctx: &mut Context<Self>| {
                if matches!(out, Outcome::Panicked(_)) {
                    // Restarted by the supervisor with fresh state; see module docs.
                    ctx.stop();
                }
                out
            },
        )))
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic with a non-text payload".to_owned()
    }
}
