//! The application's projections, each a consumer group whose handler applies events
//! to its tables exactly once (see `store::preferences`).

use strategist_actors::{Delivery, Handler, Pool, PoolOptions, TypeOptions};

use crate::database::{self, Db};
use crate::events::streams;
use crate::store::preferences::{PROJECTION, TYPES};

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
    let handler = Handler::raw(move |d: Delivery| {
        let db = db.clone();
        async move {
            let store = db.get()?;
            store
                .apply_preferences(&d.envelope, &d.entry_id)
                .await
                .map_err(database::retry)?;
            Ok(())
        }
    });
    for t in TYPES {
        pool.handle(streams::USER, t, handler.clone());
    }
    pool
}
