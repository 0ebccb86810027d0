//! The dead-letter table: the durable record of every dead letter, written by the
//! mirror (`crate::dead_letter_mirror`) from the capped `{<stream>}.dlq` streams,
//! and read and marked by the admin API.
//!
//! Invariants:
//! - a row is written once per dead-letter id: mirroring again, from any number of
//!   processes at once, inserts nothing new and never resets a row's status;
//! - a status moves only from `open` to `reprocessed` or `purged`, never back;
//! - rows are ordered by their dead-letter entry id (`entry_ms`, `entry_seq`), the
//!   order Redis gave them;
//! - the mirror's checkpoint is kept apart from the rows, because rows also come
//!   from the audit trail (dead letters handled before they were mirrored), whose
//!   ids may be ahead of dead letters not yet read.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ExprTrait as _, QueryFilter, QueryOrder, QuerySelect, Set,
};
use strategist_actors::DeadLetterEntry;

use super::entities::dead_letter::{self, Column, Entity as DeadLetterRows};
use super::entities::dead_letter_checkpoint as checkpoint;
use super::event_store::entry_parts;
use super::{Store, StoreError};

/// What has been done to a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterStatus {
    /// Waiting for an operator.
    Open,
    /// Sent back to the group that failed it.
    Reprocessed,
    /// Removed.
    Purged,
}

impl DeadLetterStatus {
    /// Every status, for messages.
    pub const ALL: [DeadLetterStatus; 3] = [Self::Open, Self::Reprocessed, Self::Purged];

    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Reprocessed => "reprocessed",
            Self::Purged => "purged",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Which rows to list; unset fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQuery {
    /// Only this stream.
    pub stream: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this group.
    pub group: Option<String>,
    /// Only this status.
    pub status: Option<DeadLetterStatus>,
    /// Only rows after this dead-letter id (the previous page's last).
    pub after: Option<String>,
    /// At most this many (capped at 1000).
    pub limit: u64,
}

/// Splits a dead-letter id into its stream and the two numbers of its entry id.
fn id_parts(id: &str) -> (&str, i64, i64) {
    let (stream, entry) = id.rsplit_once(':').unwrap_or(("", id));
    let (ms, seq) = entry_parts(entry);
    (stream, ms, seq)
}

/// The text as a database column can hold it: a dead letter is often an entry that
/// could not be decoded, and may carry a NUL byte PostgreSQL refuses.
fn col(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn row_of(e: &DeadLetterEntry, now: i64) -> dead_letter::ActiveModel {
    let (_, ms, seq) = id_parts(&e.id);
    dead_letter::ActiveModel {
        id: Set(col(&e.id)),
        stream: Set(col(&e.stream)),
        entry_ms: Set(ms),
        entry_seq: Set(seq),
        event_id: Set(e.event_id.as_deref().map(col)),
        event_type: Set(e.event_type.as_deref().map(col)),
        reason: Set(col(&e.reason)),
        error: Set(col(&e.error)),
        group_name: Set(col(&e.group)),
        attempts: Set(i32::try_from(e.attempts).unwrap_or(i32::MAX)),
        original_id: Set(col(&e.original_id)),
        at: Set(col(&e.at)),
        reprocessed: Set(i32::try_from(e.reprocessed).unwrap_or(i32::MAX)),
        fields: Set(serde_json::to_string(&e.fields).unwrap_or_else(|_| "{}".into())),
        status: Set(DeadLetterStatus::Open.as_str().to_owned()),
        updated_at_ms: Set(now),
    }
}

impl Store {
    /// Records dead letters as open, each once: ids already recorded are left as
    /// they are (with their status). Returns how many rows were new.
    pub async fn record_dead_letters(
        &self,
        entries: &[DeadLetterEntry],
    ) -> Result<u64, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut new = 0;
        // 16 columns a row: 500 rows stay under every backend's bind limit.
        for chunk in entries.chunks(500) {
            new += DeadLetterRows::insert_many(chunk.iter().map(|e| row_of(e, now)))
                .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
                .exec_without_returning(&self.db)
                .await?;
        }
        Ok(new)
    }

    /// How far the mirror has read `stream`'s dead letters and audit trail:
    /// (dead-letter entry id, audit entry id), `-` for the start.
    pub async fn mirror_checkpoint(&self, stream: &str) -> Result<(String, String), StoreError> {
        Ok(checkpoint::Entity::find_by_id(stream.to_owned())
            .one(&self.db)
            .await?
            .map(|c| (c.dlq_after, c.audit_after))
            .unwrap_or_else(|| ("-".to_owned(), "-".to_owned())))
    }

    /// Records how far the mirror has read. Two processes may move it back and
    /// forth; reading again from an older position only records nothing new.
    pub async fn save_mirror_checkpoint(
        &self,
        stream: &str,
        dlq_after: &str,
        audit_after: &str,
    ) -> Result<(), StoreError> {
        let row = checkpoint::ActiveModel {
            stream: Set(stream.to_owned()),
            dlq_after: Set(dlq_after.to_owned()),
            audit_after: Set(audit_after.to_owned()),
            updated_at_ms: Set(chrono::Utc::now().timestamp_millis()),
        };
        checkpoint::Entity::insert(row)
            .on_conflict(
                OnConflict::column(checkpoint::Column::Stream)
                    .update_columns([
                        checkpoint::Column::DlqAfter,
                        checkpoint::Column::AuditAfter,
                        checkpoint::Column::UpdatedAtMs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Records what was done to dead letters outside the API (the CLI, the
    /// auto-resolver), as their audit trail says: an open row is moved to the
    /// status, and a dead letter handled before it was ever mirrored gets its row,
    /// already closed.
    pub async fn close_dead_letters(
        &self,
        done: &[(DeadLetterEntry, DeadLetterStatus)],
    ) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        for chunk in done.chunks(500) {
            let rows = chunk.iter().map(|(e, st)| {
                let mut row = row_of(e, now);
                row.status = Set(st.as_str().to_owned());
                row
            });
            DeadLetterRows::insert_many(rows)
                .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
                .exec_without_returning(&self.db)
                .await?;
        }
        for status in [DeadLetterStatus::Reprocessed, DeadLetterStatus::Purged] {
            let ids: Vec<String> = done
                .iter()
                .filter(|(_, st)| *st == status)
                .map(|(e, _)| e.id.clone())
                .collect();
            for ids in ids.chunks(500) {
                DeadLetterRows::update_many()
                    .col_expr(Column::Status, Expr::value(status.as_str()))
                    .col_expr(Column::UpdatedAtMs, Expr::value(now))
                    .filter(Column::Id.is_in(ids.to_vec()))
                    .filter(Column::Status.eq(DeadLetterStatus::Open.as_str()))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(())
    }

    /// Dead letters in the order they arrived, paged by `after`.
    pub async fn dead_letters(
        &self,
        q: &DeadLetterQuery,
    ) -> Result<Vec<dead_letter::Model>, StoreError> {
        let mut cond = Condition::all();
        for (col, v) in [
            (Column::Stream, &q.stream),
            (Column::EventType, &q.event_type),
            (Column::Reason, &q.reason),
            (Column::GroupName, &q.group),
        ] {
            if let Some(v) = v {
                cond = cond.add(col.eq(v.clone()));
            }
        }
        if let Some(s) = q.status {
            cond = cond.add(Column::Status.eq(s.as_str()));
        }
        if let Some(after) = &q.after {
            // The id carries its own position: no lookup, and a cursor whose row
            // is gone still pages correctly.
            let (_, ms, seq) = id_parts(after);
            cond = cond.add(
                Condition::any()
                    .add(Column::EntryMs.gt(ms))
                    .add(Column::EntryMs.eq(ms).and(Column::EntrySeq.gt(seq)))
                    .add(
                        Column::EntryMs
                            .eq(ms)
                            .and(Column::EntrySeq.eq(seq))
                            .and(Column::Id.gt(after.clone())),
                    ),
            );
        }
        Ok(DeadLetterRows::find()
            .filter(cond)
            .order_by_asc(Column::EntryMs)
            .order_by_asc(Column::EntrySeq)
            .order_by_asc(Column::Id)
            .limit(q.limit.clamp(1, 1000))
            .all(&self.db)
            .await?)
    }

    /// One dead letter by id.
    pub async fn dead_letter(&self, id: &str) -> Result<Option<dead_letter::Model>, StoreError> {
        Ok(DeadLetterRows::find_by_id(id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Moves an open dead letter to `status`; false when it was not open (or not
    /// recorded).
    pub async fn mark_dead_letter(
        &self,
        id: &str,
        status: DeadLetterStatus,
    ) -> Result<bool, StoreError> {
        let r = DeadLetterRows::update_many()
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(
                Column::UpdatedAtMs,
                Expr::value(chrono::Utc::now().timestamp_millis()),
            )
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(DeadLetterStatus::Open.as_str()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }
}
