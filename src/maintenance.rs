//! Maintenance jobs of the scheduler. `cleanupExpiredData` deletes database rows
//! past their configured retention: archived events, notifications (when that
//! table exists), finished sagas, content drafts, handled dead-letter records, and
//! finished run records of the scheduler itself.
//!
//! Invariants: rows are deleted in batches of `[maintenance] batch` by primary key
//! (`DELETE ... WHERE pk IN (SELECT pk ... LIMIT n)`), each batch its own short
//! statement, so no table is locked for long and other writers interleave; a
//! retention of 0 days keeps a table forever; open dead letters and running sagas
//! are never deleted, whatever their age.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Deserialize;

use crate::database::Db;
use crate::scheduler::{Job, JobError, JobOutcome};

/// `[maintenance]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// Rows per delete statement.
    pub batch: u64,
    /// A pause between two batches, so other writers get the lock.
    pub pause_ms: u64,
    /// Days an archived event is kept in the event store (0: forever).
    pub events_days: u64,
    /// Days a notification record is kept (0: forever).
    pub notifications_days: u64,
    /// Days a completed or failed saga is kept (0: forever).
    pub sagas_days: u64,
    /// Days a content draft is kept (0: forever).
    pub drafts_days: u64,
    /// Days a reprocessed or purged dead-letter record is kept (0: forever).
    pub dead_letters_days: u64,
    /// Days a finished scheduler run record is kept (0: forever).
    pub scheduled_runs_days: u64,
    /// Days after which a cached embedding no file text or index entry refers to is
    /// dropped by `optimizeEmbeddingCache` (0: only unused models are dropped).
    pub embeddings_unused_days: u64,
}

/// One table's rule: which rows are past retention.
struct Rule {
    name: &'static str,
    table: &'static str,
    key: &'static str,
    days: u64,
    /// Rows expired given the cutoff in ms.
    expired: fn(i64) -> SimpleExpr,
}

/// The smallest ULID of the millisecond `ms`: every id made before it sorts below.
fn ulid_floor(ms: i64) -> String {
    ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(0), 0).to_string()
}

fn rules(s: &MaintenanceSettings) -> Vec<Rule> {
    vec![
        Rule {
            name: "events",
            table: "events",
            key: "id",
            days: s.events_days,
            expired: |cut| Expr::col(Alias::new("archived_at_ms")).lt(cut),
        },
        // A notification's id is the ULID of its request event: ids before the
        // cutoff's ULID are older (ULIDs sort by time). Its delivery records go
        // first, so no record outlives its notification.
        Rule {
            name: "notification_deliveries",
            table: "notification_deliveries",
            key: "notification_id",
            days: s.notifications_days,
            expired: |cut| Expr::col(Alias::new("notification_id")).lt(ulid_floor(cut)),
        },
        Rule {
            name: "notifications",
            table: "notifications",
            key: "id",
            days: s.notifications_days,
            expired: |cut| Expr::col(Alias::new("id")).lt(ulid_floor(cut)),
        },
        Rule {
            name: "sagas",
            table: "sagas",
            key: "id",
            days: s.sagas_days,
            expired: |cut| {
                Expr::col(Alias::new("updated_at_ms"))
                    .lt(cut)
                    .and(Expr::col(Alias::new("status")).is_in(["completed", "failed"]))
            },
        },
        Rule {
            name: "drafts",
            table: "content_drafts",
            key: "id",
            days: s.drafts_days,
            expired: |cut| Expr::col(Alias::new("created_at_ms")).lt(cut),
        },
        Rule {
            name: "dead_letters",
            table: "dead_letters",
            key: "id",
            days: s.dead_letters_days,
            expired: |cut| {
                Expr::col(Alias::new("updated_at_ms"))
                    .lt(cut)
                    .and(Expr::col(Alias::new("status")).ne("open"))
            },
        },
    ]
}

/// The `cleanupExpiredData` job.
pub struct Cleanup {
    db: Db,
    settings: MaintenanceSettings,
}

impl Cleanup {
    /// The job.
    pub fn new(db: Db, settings: MaintenanceSettings) -> Self {
        Cleanup { db, settings }
    }

    /// Deletes what is past retention at `now`; counts per table and batches.
    pub async fn clean(&self, now: DateTime<Utc>) -> Result<JobOutcome, JobError> {
        let store = self
            .db
            .try_get()
            .ok_or_else(|| JobError("the database is not open yet".into()))?;
        let db = &store.db;
        let manager = sea_orm_migration::SchemaManager::new(db);
        let mut counts = BTreeMap::new();
        let mut failed = Vec::new();
        for rule in rules(&self.settings) {
            if rule.days == 0 {
                continue;
            }
            if !manager.has_table(rule.table).await.unwrap_or(false) {
                continue;
            }
            let cut = cutoff(now, rule.days);
            match self
                .delete_batched(db, rule.table, rule.key, (rule.expired)(cut))
                .await
            {
                Ok((rows, batches)) => {
                    counts.insert(format!("{}_deleted", rule.name), rows);
                    if batches > 0 {
                        *counts.entry("batches".to_owned()).or_insert(0) += batches;
                    }
                }
                Err(e) => {
                    tracing::warn!(table = rule.table, error = %e, "cleanup failed");
                    failed.push(rule.name);
                }
            }
        }
        if self.settings.scheduled_runs_days > 0 {
            let cut = cutoff(now, self.settings.scheduled_runs_days);
            // Composite key: deleted by its slot column in batches of whole slots.
            let expired = Expr::col(Alias::new("scheduled_for_ms"))
                .lt(cut)
                .and(Expr::col(Alias::new("finished_at_ms")).is_not_null());
            match self
                .delete_batched(db, "scheduled_runs", "scheduled_for_ms", expired)
                .await
            {
                Ok((rows, batches)) => {
                    counts.insert("scheduled_runs_deleted".to_owned(), rows);
                    if batches > 0 {
                        *counts.entry("batches".to_owned()).or_insert(0) += batches;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cleanup of scheduled_runs failed");
                    failed.push("scheduled_runs");
                }
            }
        }
        let summary = counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        if failed.is_empty() {
            Ok(JobOutcome { summary, counts })
        } else {
            Err(JobError(format!(
                "failed for {}; {summary}",
                failed.join(", ")
            )))
        }
    }

    async fn delete_batched(
        &self,
        db: &DatabaseConnection,
        table: &str,
        key: &str,
        expired: SimpleExpr,
    ) -> Result<(u64, u64), sea_orm::DbErr> {
        let batch = std::cmp::Ord::max(self.settings.batch, 1);
        let (mut rows, mut batches) = (0u64, 0u64);
        loop {
            let pick = Query::select()
                .column(Alias::new(key))
                .from(Alias::new(table))
                .and_where(expired.clone())
                .limit(batch)
                .to_owned();
            let delete = Query::delete()
                .from_table(Alias::new(table))
                .and_where(Expr::col(Alias::new(key)).in_subquery(pick))
                .and_where(expired.clone())
                .to_owned();
            let n = db.execute(&delete).await?.rows_affected();
            if n == 0 {
                break;
            }
            rows += n;
            batches += 1;
            if n < batch {
                break;
            }
            tokio::time::sleep(Duration::from_millis(self.settings.pause_ms)).await;
        }
        Ok((rows, batches))
    }
}

fn cutoff(now: DateTime<Utc>, days: u64) -> i64 {
    let ms = i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    now.timestamp_millis().saturating_sub(ms)
}

impl Job for Cleanup {
    fn name(&self) -> &'static str {
        "cleanupExpiredData"
    }

    fn run<'a>(
        &'a self,
        _scheduled_for: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(self.clean(Utc::now()))
    }
}
