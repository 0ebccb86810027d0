//! The application's projections, each a consumer group whose handler applies events
//! to its tables exactly once (see `store::preferences`), and their rebuild from the
//! event store (shared by `strategist projections rebuild` and the admin API).
//! The user-contacts projection (`user.registered` -> `user_contacts`) is an upsert
//! that only moves forward (see `store::contacts`), so it needs no marker table.

use std::time::Duration;

use strategist_actors::{
    Batching, Delivery, Envelope, Event, EventType, Handler, Pool, PoolOptions, TypeOptions,
};

use crate::database::{self, Db};
use crate::events::streams;
use crate::events::user::UserRegistered;
use crate::store::preferences::{PROJECTION, TYPES};
use crate::store::{Store, StoreError};

/// Most events applied in one transaction.
const BATCH: usize = 256;
/// How long a batch waits to fill once it has one event.
const LINGER: Duration = Duration::from_millis(5);

/// The projections `rebuild` knows, by name.
pub const NAMES: [&str; 1] = [PROJECTION];

/// The user-preferences projection's pool. Entries of one user run in order in a
/// process; across processes the newest-write-wins rule keeps the result the same.
/// `writers` batches commit at once (see `database::parallel_writers`): the ordering
/// key keeps a user's events out of two batches at a time.
pub fn user_preferences(db: Db, mut options: PoolOptions, writers: usize) -> Pool {
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
    let batching = Batching {
        max: BATCH,
        linger: LINGER,
        parallel: writers,
    };
    let handler = Handler::batched(batching, move |batch: Vec<Delivery>| {
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

/// The user-contacts projection's consumer group.
pub const CONTACTS: &str = "user-contacts";

/// The user-contacts projection's pool: each `user.registered` records the user's
/// email address for the email channel. Never logs the address.
pub fn user_contacts(db: Db, mut options: PoolOptions) -> Pool {
    options
        .types
        .entry(UserRegistered::TYPE.to_owned())
        .or_insert_with(|| TypeOptions {
            ordering_key: Some("user_id".into()),
            ..TypeOptions::default()
        });
    let mut pool = Pool::new(CONTACTS, options);
    pool.on(move |ev: Event<UserRegistered>| {
        let db = db.clone();
        async move {
            let at = ev.envelope.timestamp.timestamp_millis();
            db.get()?
                .save_contact(&ev.data.user_id, &ev.data.email, at)
                .await
                .map_err(database::retry)
        }
    });
    pool
}

/// Why a rebuild did not happen or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// No projection has this name.
    #[error("unknown projection `{0}` (known: {known})", known = NAMES.join(", "))]
    Unknown(String),
    /// The users to rebuild could not be listed.
    #[error("listing users: {0}")]
    Users(StoreError),
    /// One user's rebuild failed, after retries.
    #[error("rebuilding user {user}: {source}")]
    User {
        /// The user.
        user: String,
        /// What failed.
        source: StoreError,
    },
}

/// Refuses a name that is not a projection's.
pub fn check_name(name: &str) -> Result<(), RebuildError> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(RebuildError::Unknown(name.to_owned()))
    }
}

/// Rebuilds projection `name` from the event store for one user or for every
/// user it knows, safe while live events keep arriving. `progress(done, total,
/// events)` is called after each user. Returns (users, events replayed).
pub async fn rebuild(
    store: &Store,
    name: &str,
    user: Option<String>,
    mut progress: impl FnMut(usize, usize, usize),
) -> Result<(usize, usize), RebuildError> {
    check_name(name)?;
    let users = match user {
        Some(u) => vec![u],
        None => store
            .preference_users()
            .await
            .map_err(RebuildError::Users)?,
    };
    let total = users.len();
    let mut events = 0;
    for (i, u) in users.iter().enumerate() {
        events += rebuild_user(store, u).await?;
        progress(i + 1, total, events);
    }
    Ok((total, events))
}

/// One user's rebuild, tried again when it collides with a live write of the same
/// user (a new row inserted by both, say).
async fn rebuild_user(store: &Store, user: &str) -> Result<usize, RebuildError> {
    let mut attempt = 0;
    loop {
        match store.rebuild_preferences(user).await {
            Ok(n) => return Ok(n),
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::debug!(user, error = %e, "rebuild collided with a live write; again");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(source) => {
                return Err(RebuildError::User {
                    user: user.to_owned(),
                    source,
                });
            }
        }
    }
}
