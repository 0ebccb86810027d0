//! The worker actor: runs handler calls with their timeout, and turns a panic into
//! an outcome instead of a dead arbiter. A call can be cancelled from outside (its
//! lease went to another consumer).
//!
//! With `concurrency` 1 (the default) a worker runs one call at a time and holds
//! its mailbox meanwhile. With more, it runs up to that many calls at once, in the
//! order they arrived (a fair semaphore): for handlers that mostly wait on the
//! network or on a batch writer, where one call at a time leaves the worker idle.
//!
//! Invariants: a worker never acks anything (its router does, after the outcome);
//! after a panic it stops itself so its `Supervisor` restarts it in place (the same
//! `Addr` keeps working, queued deliveries are kept); past its restart budget it
//! reports a crash loop and pauses before taking more work.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::{AbortRegistration, Abortable};

use crate::budget::RestartBudget;
use crate::dispose::Outcome;
use crate::handler::{Delivery, Handler};
use crate::health::Health;
use crate::hooks::Hooks;
use crate::stats::RouteStats;

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
    /// Calls running at once, at most (`None`: one at a time, mailbox held).
    slots: Option<Arc<tokio::sync::Semaphore>>,
    budget: RestartBudget,
    max_restarts: u32,
    cooldown: Duration,
    health: Health,
    hooks: Hooks,
    stats: Arc<RouteStats>,
}

impl Worker {
    pub(crate) fn new(
        part: String,
        restarts: Restarts,
        health: Health,
        hooks: Hooks,
        concurrency: usize,
        stats: Arc<RouteStats>,
    ) -> Self {
        Worker {
            part,
            slots: (concurrency > 1).then(|| Arc::new(tokio::sync::Semaphore::new(concurrency))),
            budget: RestartBudget::new(restarts.max, restarts.window),
            max_restarts: restarts.max,
            cooldown: restarts.cooldown,
            health,
            hooks,
            stats,
        }
    }
}

/// How a worker's crashes are budgeted: at most `max` restarts within `window`,
/// then a pause of `cooldown`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Restarts {
    pub(crate) max: u32,
    pub(crate) window: Duration,
    pub(crate) cooldown: Duration,
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Supervised for Worker {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        RouteStats::add(&self.stats.restarts, 1);
        self.count_crash(ctx);
    }
}

impl Worker {
    /// Counts a crash against the restart budget; past it, reports a crash loop and
    /// pauses the worker.
    fn count_crash(&mut self, ctx: &mut Context<Self>) {
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
    type Result = ResponseFuture<Outcome>;

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let slots = self.slots.clone();
        let run = async move {
            // Held until the call ends: at most `concurrency` run at once.
            let _permit = match &slots {
                Some(s) => s.clone().acquire_owned().await.ok(),
                None => None,
            };
            call(msg).await
        };
        let concurrent = self.slots.is_some();
        let done = actix::fut::wrap_future(run).map(
            move |out: Outcome, act: &mut Self, ctx: &mut Context<Self>| {
                let panicked = matches!(out, Outcome::Panicked(_));
                let _ = tx.send(out);
                if panicked {
                    if concurrent {
                        // Other calls are running: count the crash, keep them.
                        act.count_crash(ctx);
                    } else {
                        // Restarted by the supervisor with fresh state.
                        ctx.stop();
                    }
                }
            },
        );
        if concurrent {
            ctx.spawn(done);
        } else {
            // Holds the mailbox: one call at a time, the rest stay queued (and
            // survive a restart of the worker).
            ctx.wait(done);
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Outcome::WorkerLost("the worker stopped".into()))
        })
    }
}

/// One handler call: panics caught, cancellable, within its timeout.
async fn call(msg: Deliver) -> Outcome {
    let Deliver {
        span,
        delivery,
        handler,
        timeout,
        abort,
    } = msg;
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
