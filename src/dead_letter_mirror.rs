//! The dead-letter mirror: copies every entry of the capped `{<stream>}.dlq`
//! streams into the `dead_letters` table, the durable record the admin API reads,
//! and follows each stream's audit trail (`{<stream>}.dlq.audit`) so that a dead
//! letter reprocessed or purged outside the API (the CLI, an auto-resolution rule)
//! is marked too, and one handled before it was ever mirrored still gets its row.
//!
//! Every process runs it on a timer. It reads each stream's dead letters and audit
//! trail after a checkpoint kept in the database; recording is idempotent by
//! dead-letter id and a status only moves away from `open`, so processes running
//! it at once, or a run repeated after a crash, change nothing twice. A dead letter
//! trimmed from Redis before any process mirrored it (and never handled) is lost
//! to the table: the interval (2 s) is far shorter than any cap is reached in
//! practice.

use std::time::Duration;

use strategist_actors::{AuditAction, DeadLetterError, DeadLetters};

use crate::database::Db;
use crate::store::dead_letters::DeadLetterStatus;
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

/// Mirrors one stream's new dead letters, then applies its new audit records;
/// returns how many dead letters were new.
pub async fn sync_stream(
    store: &Store,
    dl: &DeadLetters,
    stream: &str,
) -> Result<u64, MirrorError> {
    let (mut dlq_after, mut audit_after) = store.mirror_checkpoint(stream).await?;
    let mut new = 0;
    loop {
        let page = dl.page(stream, &dlq_after, PAGE).await?;
        let Some(last) = page.last() else { break };
        new += store.record_dead_letters(&page).await?;
        dlq_after = last.entry_id().to_owned();
        store
            .save_mirror_checkpoint(stream, &dlq_after, &audit_after)
            .await?;
        if page.len() < PAGE {
            break;
        }
    }
    // After the dead letters: a record of one read above marks its row rather
    // than making it.
    loop {
        let page = dl.audit_page(stream, &audit_after, PAGE).await?;
        let Some(last) = page.last_id else { break };
        let done: Vec<_> = page
            .records
            .into_iter()
            .map(|(entry, action)| {
                let status = match action {
                    AuditAction::Reprocessed => DeadLetterStatus::Reprocessed,
                    AuditAction::Purged => DeadLetterStatus::Purged,
                };
                (entry, status)
            })
            .collect();
        store.close_dead_letters(&done).await?;
        audit_after = last;
        store
            .save_mirror_checkpoint(stream, &dlq_after, &audit_after)
            .await?;
        if page.read < PAGE {
            break;
        }
    }
    Ok(new)
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
