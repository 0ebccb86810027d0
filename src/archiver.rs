//! The archiver: a consumer group on every stream that writes every event, of every
//! type, known or not, into the event store, exactly once by event id, in batches.
//!
//! Each handler call hands its event to one batch writer and waits for the batch
//! to be committed, so an entry is acked only after it is stored; under load many
//! calls share one `INSERT`.

use std::time::Duration;

use strategist_actors::{Delivery, Handler, HandlerError, Health, Pool, PoolOptions};
use tokio::sync::{mpsc, oneshot};

use crate::database::{Db, PART};
use crate::events::streams;
use crate::store::event_store::Archived;

/// The archiver's consumer group.
pub const GROUP: &str = "archiver";

/// Most events in one insert.
const BATCH: usize = 500;
/// How long the writer waits for a batch to fill once it has one event.
const LINGER: Duration = Duration::from_millis(5);

type Job = (Archived, oneshot::Sender<Result<(), String>>);

/// Starts the batch writer on the current actix System; returns the pool that feeds
/// it.
pub fn pool(db: Db, health: Health, mut options: PoolOptions) -> Pool {
    // Archive events as published, valid for the catalog or not.
    options.validate_payloads = false;
    let (tx, rx) = mpsc::channel::<Job>(BATCH * 4);
    actix::spawn(writer(db, health, rx));
    let mut pool = Pool::new(GROUP, options);
    let handler = Handler::raw(move |d: Delivery| {
        let tx = tx.clone();
        async move {
            let (done, wait) = oneshot::channel();
            let job = Archived {
                stream: d.stream,
                entry_id: d.entry_id,
                envelope: d.envelope,
            };
            tx.send((job, done))
                .await
                .map_err(|_| HandlerError::retryable("archiver writer stopped"))?;
            match wait.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(HandlerError::retryable(e)),
                Err(_) => Err(HandlerError::retryable("archiver writer stopped")),
            }
        }
    });
    for s in streams::ALL {
        pool.handle_all(s, handler.clone());
    }
    pool
}

async fn writer(db: Db, health: Health, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => batch.push(job),
                _ => break,
            }
        }
        let (events, waiters): (Vec<Archived>, Vec<_>) = batch.into_iter().unzip();
        let result = match db.get() {
            Ok(store) => store.archive(&events).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match &result {
            Ok(_) => {
                if db.try_get().is_some() {
                    health.up(PART);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, count = events.len(), "archiving failed; the events will be retried");
                health.down(PART, e.clone());
            }
        }
        for w in waiters {
            let _ = w.send(result.clone().map(|_| ()));
        }
    }
}
