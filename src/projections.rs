//! The application's projections, each a consumer group whose handler applies events
//! to its tables exactly once (see `store::preferences`).

use std::time::Duration;

use strategist_actors::{Delivery, Envelope, Handler, Pool, PoolOptions, TypeOptions};

use crate::database::{self, Db};
use crate::events::streams;
use crate::store::preferences::{PROJECTION, TYPES};

/// Most events applied in one transaction.
const BATCH: usize = 256;
/// How long a batch waits to fill once it has one event.
const LINGER: Duration = Duration::from_millis(5);

/// The projections `rebuild` knows, by name.
pub const NAMES: [&str; 1] = [PROJECTION];

/// The user-preferences projection's pool. Entries of one user run in order in a
/// process; across processes the newest-write-wins rule keeps the result the same.
pub fn user_preferences(db: Db, mut options: PoolOptions) -> Pool {
    for t in TYPES {
        options
            .types
            .entry(t.to_owned())
            .or_insert_with(|| TypeOptions {
                ordering_key: Some("user_id".into()),
                ..TypeOptions::default()
            });
    }
    let mut pool = Pool::new(PROJECTION, options);
    // One transaction for a whole batch; if it fails, each event alone, so that
    // one bad event fails by itself.
    let handler = Handler::batch(BATCH, LINGER, move |batch: Vec<Delivery>| {
        let db = db.clone();
        async move {
            let store = match db.get() {
                Ok(s) => s,
                Err(e) => return batch.iter().map(|_| Err(e.clone())).collect(),
            };
            let all: Vec<(&Envelope, &str)> = batch
                .iter()
                .map(|d| (&d.envelope, d.entry_id.as_str()))
                .collect();
            if store.apply_preferences_batch(&all).await.is_ok() {
                return batch.iter().map(|_| Ok(())).collect();
            }
            let mut out = Vec::with_capacity(batch.len());
            for (ev, entry) in all {
                let r = store.apply_preferences(ev, entry).await;
                out.push(r.map(|_| ()).map_err(database::retry));
            }
            out
        }
    });
    for t in TYPES {
        pool.handle(streams::USER, t, handler.clone());
    }
    pool
}
