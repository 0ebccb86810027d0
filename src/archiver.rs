//! The archiver: a consumer group on every stream that writes every event, of every
//! type, known or not, into the event store, exactly once by event id, in batches.
//!
//! Each handler call hands its event to one batch writer and waits for the batch
//! to be committed, so an entry is acked only after it is stored; under load many
//! calls share one `INSERT`.

use std::time::Duration;

use strategist_actors::{Batching, Delivery, Handler, Health, Pool, PoolOptions};

use crate::database::{Db, PART};
use crate::events::streams;
use crate::store::event_store::Archived;

/// The archiver's consumer group.
pub const GROUP: &str = "archiver";

/// Most events in one insert.
const BATCH: usize = 500;
/// How long the writer waits for a batch to fill once it has one event.
const LINGER: Duration = Duration::from_millis(5);

/// The archiver's pool: every call joins a batch, `writers` batches commit at once
/// (see `database::parallel_writers`).
pub fn pool(db: Db, health: Health, mut options: PoolOptions, writers: usize) -> Pool {
    // Archive events as published, valid for the catalog or not.
    options.validate_payloads = false;
    let batching = Batching {
        max: BATCH,
        linger: LINGER,
        parallel: writers,
    };
    let handler = Handler::batched(batching, move |batch: Vec<Delivery>| {
        let (db, health) = (db.clone(), health.clone());
        async move {
            let n = batch.len();
            let events: Vec<Archived> = batch
                .into_iter()
                .map(|d| Archived {
                    stream: d.stream,
                    entry_id: d.entry_id,
                    envelope: d.envelope,
                })
                .collect();
            let store = match db.get() {
                Ok(s) => s,
                Err(e) => return vec![Err(e); n],
            };
            match store.archive(&events).await {
                Ok(_) => {
                    health.up(PART);
                    vec![Ok(()); n]
                }
                Err(e) => {
                    tracing::warn!(error = %e, count = n, "archiving failed; the events will be retried");
                    health.down(PART, e.to_string());
                    vec![Err(crate::database::retry(e)); n]
                }
            }
        }
    });
    let mut pool = Pool::new(GROUP, options);
    for s in streams::ALL {
        pool.handle_all(s, handler.clone());
    }
    pool
}
