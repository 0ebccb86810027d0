//! Batch handlers: a handler that takes many deliveries at once, for handlers that
//! write to a database (one commit for hundreds of events is what lets an archive or
//! a projection keep up with a busy stream).
//!
//! Each delivery still goes through the router on its own: it is leased, retried,
//! dead-lettered and acked by itself (acks batch anyway), so a bad entry fails
//! alone. Calls of the handler (from every worker of the pool, on any thread) are
//! gathered by one writer task, on a thread of its own, into batches of at most
//! `max`, waiting at most `linger` for a batch to fill; each call waits for its own
//! result. Give the pool `concurrency` of at least `max / workers`, or batches
//! never fill.
//!
//! A database that takes writers side by side (PostgreSQL) keeps up only when the
//! next batch is written while the last one commits: [`Batching::parallel`] batches
//! run at once. The next batch is gathered only once one of them is free, so under
//! load batches grow to `max` instead of splitting the same events into more round
//! trips.
//!
//! Invariants: the batch function returns one result per delivery, in order (a
//! shorter or longer answer fails the whole batch, retryably); a panic in it fails
//! that batch's deliveries retryably and the next call starts a new writer; at most
//! `parallel` calls of the batch function run at once.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::handler::{Delivery, Handler, HandlerError};
use crate::worker::panic_message;

type Reply = oneshot::Sender<Result<(), HandlerError>>;
/// The writer's inbox, made on first use and again if the writer died.
type Inbox = Arc<Mutex<Option<mpsc::Sender<(Delivery, Reply)>>>>;

/// How a batch handler gathers its calls.
///
/// ```
/// use std::time::Duration;
/// use strategist_actors::Batching;
///
/// // Up to 500 events per batch, 4 batches committing at once.
/// let b = Batching { max: 500, linger: Duration::from_millis(5), parallel: 4 };
/// # let _ = b;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most deliveries in one batch.
    pub max: usize,
    /// How long a batch waits to fill once it has one delivery.
    pub linger: Duration,
    /// Most batches running at once (1: one after the other).
    pub parallel: usize,
}

impl Handler {
    /// A handler of batches of deliveries: `f` gets up to `max` deliveries and
    /// returns one result per delivery, in order; one batch at a time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use strategist_actors::{Delivery, Handler};
    ///
    /// let h = Handler::batch(500, Duration::from_millis(5), |batch: Vec<Delivery>| async move {
    ///     // one INSERT of every event of the batch here
    ///     batch.iter().map(|_| Ok(())).collect()
    /// });
    /// # let _ = h;
    /// ```
    pub fn batch<F, Fut>(max: usize, linger: Duration, f: F) -> Handler
    where
        F: Fn(Vec<Delivery>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<(), HandlerError>>> + 'static,
    {
        Handler::batched(
            Batching {
                max,
                linger,
                parallel: 1,
            },
            f,
        )
    }

    /// A handler of batches with `parallel` batches running at once (see
    /// [`Batching`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use strategist_actors::{Batching, Delivery, Handler};
    ///
    /// let b = Batching { max: 500, linger: Duration::from_millis(5), parallel: 4 };
    /// let h = Handler::batched(b, |batch: Vec<Delivery>| async move {
    ///     batch.iter().map(|_| Ok(())).collect()
    /// });
    /// # let _ = h;
    /// ```
    pub fn batched<F, Fut>(b: Batching, f: F) -> Handler
    where
        F: Fn(Vec<Delivery>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<(), HandlerError>>> + 'static,
    {
        let f = Arc::new(f);
        let b = Batching {
            max: b.max.max(1),
            parallel: b.parallel.max(1),
            ..b
        };
        let writer: Inbox = Arc::default();
        Handler::raw(move |d: Delivery| {
            let tx = {
                let mut w = writer.lock().unwrap_or_else(PoisonError::into_inner);
                match w.as_ref() {
                    Some(tx) if !tx.is_closed() => tx.clone(),
                    _ => {
                        let (tx, rx) = mpsc::channel(b.max * (b.parallel + 3));
                        start_writer(rx, f.clone(), b);
                        *w = Some(tx.clone());
                        tx
                    }
                }
            };
            async move {
                let (done, wait) = oneshot::channel();
                tx.send((d, done))
                    .await
                    .map_err(|_| HandlerError::retryable("the batch writer stopped"))?;
                wait.await
                    .unwrap_or_else(|_| Err(HandlerError::retryable("the batch writer stopped")))
            }
        })
    }
}

/// Starts the writer on a thread of its own (an actix arbiter) when there is an
/// actix system, else on the caller's thread.
///
/// A batch is a chain of round trips to the database (begin, statements, commit),
/// each of which wakes the writer. On a router's thread every such wake-up waited
/// behind the per-entry work queued there (hundreds of entries finishing each
/// batch), so the commits, and with them a whole group, went at the pace of that
/// queue while the CPU had room: `strategist load` on SQLite fell behind with
/// `serve` at one core of two. On its own thread the writer runs as soon as the
/// database answers.
fn start_writer<F, Fut>(rx: mpsc::Receiver<(Delivery, Reply)>, f: Arc<F>, b: Batching)
where
    F: Fn(Vec<Delivery>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Result<(), HandlerError>>> + 'static,
{
    let own = actix::System::try_current().and_then(|_| actix::Arbiter::try_new().ok());
    let Some(arbiter) = own else {
        tokio::task::spawn_local(write_batches(rx, f, b));
        return;
    };
    let started = arbiter.spawn_fn(move || {
        tokio::task::spawn_local(async move {
            write_batches(rx, f, b).await;
            // Every caller is gone: the thread has nothing left to do.
            actix::Arbiter::current().stop();
        });
    });
    if !started {
        tracing::error!("the batch writer's thread stopped before it started");
    }
}

async fn write_batches<F, Fut>(
    mut rx: mpsc::Receiver<(Delivery, Reply)>,
    f: Arc<F>,
    Batching {
        max,
        linger,
        parallel,
    }: Batching,
) where
    F: Fn(Vec<Delivery>) -> Fut + 'static,
    Fut: Future<Output = Vec<Result<(), HandlerError>>> + 'static,
{
    let free = Arc::new(Semaphore::new(parallel));
    loop {
        // A free slot first: while every batch is busy, calls pile up in the
        // inbox and the next batch leaves full.
        let Ok(slot) = free.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let gathering = std::time::Instant::now();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => batch.push(job),
                _ => break,
            }
        }
        let f = f.clone();
        let gathered = gathering.elapsed();
        let run = async move {
            let (n, started) = (batch.len(), std::time::Instant::now());
            run_batch(batch, f.as_ref()).await;
            drop(slot);
            // How full batches leave and how long they take (gathering, then the
            // batch function): what to look at when a batched group falls behind.
            tracing::debug!(
                size = n,
                gather_us = gathered.as_micros() as u64,
                run_us = started.elapsed().as_micros() as u64,
                "batch done"
            );
        };
        if parallel == 1 {
            run.await;
        } else {
            tokio::task::spawn_local(run);
        }
    }
}

async fn run_batch<F, Fut>(batch: Vec<(Delivery, Reply)>, f: &F)
where
    F: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = Vec<Result<(), HandlerError>>>,
{
    let (deliveries, replies): (Vec<Delivery>, Vec<Reply>) = batch.into_iter().unzip();
    let n = deliveries.len();
    let results = match std::panic::catch_unwind(AssertUnwindSafe(|| f(deliveries))) {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        Err(p) => Err(p),
    };
    let results = match results {
        Ok(r) if r.len() == n => r,
        Ok(r) => {
            let e = format!("the batch handler answered {} results for {n}", r.len());
            vec![Err(HandlerError::Retryable(e)); n]
        }
        Err(p) => {
            let e = format!("the batch handler {}", panic_message(p.as_ref()));
            vec![Err(HandlerError::Retryable(e)); n]
        }
    };
    for (reply, r) in replies.into_iter().zip(results) {
        let _ = reply.send(r);
    }
}
