//! The dead-letter mirror: copies every entry of the capped `{<stream>}.dlq`
//! streams into the `dead_letters` table, the durable record the admin API reads.
//!
//! Every process runs it on a timer. It reads each dead-letter stream after that
//! stream's newest recorded row (the checkpoint lives in the table itself), and
//! records what it read; recording is idempotent by dead-letter id, so processes
//! running it at once, or a run repeated after a crash, write nothing twice. A
//! dead letter trimmed from Redis before any process mirrored it is lost to the
//! table: the interval (2 s) is far shorter than any cap is reached in practice.

use std::time::Duration;

use strategist_actors::{DeadLetterError, DeadLetters};

use crate::database::Db;
use crate::store::{Store, StoreError};

/// How often every process mirrors.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Entries read from Redis at a time.
const PAGE: usize = 500;

/// Why a mirror run stopped.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] DeadLetterError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Mirrors one stream's new dead letters; returns how many rows were new.
pub async fn sync_stream(
    store: &Store,
    dl: &DeadLetters,
    stream: &str,
) -> Result<u64, MirrorError> {
    let mut after = store
        .dead_letter_checkpoint(stream)
        .await?
        .unwrap_or_else(|| "-".to_owned());
    let mut new = 0;
    loop {
        let page = dl.page(stream, &after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(new);
        };
        after = last.entry_id().to_owned();
        new += store.record_dead_letters(&page).await?;
        if page.len() < PAGE {
            return Ok(new);
        }
    }
}

/// Mirrors every stream of `dl`; returns how many rows were new.
pub async fn sync(store: &Store, dl: &DeadLetters) -> Result<u64, MirrorError> {
    let mut new = 0;
    for stream in dl.streams() {
        new += sync_stream(store, dl, stream).await?;
    }
    Ok(new)
}

/// Runs the mirror every [`INTERVAL`] for the life of the process. While the
/// database is not open yet, runs wait for it.
pub fn spawn(db: Db, dl: DeadLetters) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Logged once per outage, not every 2 s.
        let mut failing = false;
        loop {
            tick.tick().await;
            let Some(store) = db.try_get() else { continue };
            match sync(store, &dl).await {
                Ok(n) => {
                    if failing {
                        tracing::info!("dead-letter mirror works again");
                    }
                    failing = false;
                    if n > 0 {
                        tracing::debug!(new = n, "dead letters mirrored to the database");
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "dead-letter mirror failed; trying again every 2 s");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    });
}
