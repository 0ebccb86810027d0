//! The scheduler's `optimizeEmbeddingCache` job: drops cached chunk embeddings
//! (`embedding_chunks`) that can no longer serve, and reports the bytes freed.
//!
//! A chunk goes when its model is in use nowhere (no configured embedder, no user's
//! preferred model, no index entry), or when nothing has referred to its text for
//! `[maintenance] embeddings_unused_days` (no file's extracted text has its hash and
//! no index entry names it: the cache is read only when such a text is embedded
//! again). Invariant: a chunk that an index entry names is never dropped, so search
//! never loses a vector it points to. Deleted in batches, like the cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Expr, ExprTrait as _, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};

use super::Embedders;
use crate::database::Db;
use crate::maintenance::MaintenanceSettings;
use crate::scheduler::{Job, JobError, JobOutcome};
use crate::store::entities::{embedding_chunk, file_text, index_entry, user_preferences};

/// The job.
pub struct OptimizeEmbeddingCache {
    db: Db,
    embedders: Arc<Embedders>,
    settings: MaintenanceSettings,
}

impl OptimizeEmbeddingCache {
    /// The job over `embedders` (whose models are in use).
    pub fn new(db: Db, embedders: Arc<Embedders>, settings: MaintenanceSettings) -> Self {
        OptimizeEmbeddingCache {
            db,
            embedders,
            settings,
        }
    }

    /// One run at `now`.
    pub async fn optimize(&self, now: DateTime<Utc>) -> Result<JobOutcome, JobError> {
        let e = |e: sea_orm::DbErr| JobError(e.to_string());
        let store = self
            .db
            .try_get()
            .ok_or_else(|| JobError("the database is not open yet".into()))?;
        let db = &store.db;
        let mut in_use: BTreeSet<String> = self
            .embedders
            .names()
            .iter()
            .filter_map(|n| self.embedders.choose(Some(n)).ok())
            .map(|m| m.model().to_owned())
            .collect();
        let preferred: Vec<Option<String>> = user_preferences::Entity::find()
            .select_only()
            .column(user_preferences::Column::EmbeddingModel)
            .distinct()
            .into_tuple()
            .all(db)
            .await
            .map_err(e)?;
        in_use.extend(preferred.into_iter().flatten());
        let indexed: Vec<String> = index_entry::Entity::find()
            .select_only()
            .column(index_entry::Column::Model)
            .distinct()
            .into_tuple()
            .all(db)
            .await
            .map_err(e)?;
        in_use.extend(indexed);

        let days = i64::try_from(self.settings.embeddings_unused_days).unwrap_or(i64::MAX);
        let cut = now
            .timestamp_millis()
            .saturating_sub(days.saturating_mul(86_400_000));
        let referenced_by_index = Query::select()
            .column(index_entry::Column::ContentHash)
            .from(index_entry::Entity)
            .to_owned();
        let referenced_by_text = Query::select()
            .column(file_text::Column::ContentHash)
            .from(file_text::Entity)
            .to_owned();
        let unused_model = embedding_chunk::Column::Model.is_not_in(in_use.iter().cloned());
        let unread = Condition::all()
            .add(embedding_chunk::Column::CreatedAtMs.lt(cut))
            .add(
                Expr::col(embedding_chunk::Column::ContentHash).not_in_subquery(referenced_by_text),
            );
        let mut droppable = Condition::any().add(unused_model);
        if days > 0 {
            droppable = droppable.add(unread);
        }
        let droppable = Condition::all().add(droppable).add(
            Expr::col(embedding_chunk::Column::ContentHash).not_in_subquery(referenced_by_index),
        );

        let batch = std::cmp::Ord::max(self.settings.batch, 1);
        let (mut rows, mut bytes, mut batches) = (0u64, 0u64, 0u64);
        let mut models: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let picked = embedding_chunk::Entity::find()
                .filter(droppable.clone())
                .limit(batch)
                .all(db)
                .await
                .map_err(e)?;
            if picked.is_empty() {
                break;
            }
            let mut keys = Condition::any();
            for c in &picked {
                bytes += (c.vector.len() + c.text.len()) as u64;
                *models.entry(c.model.clone()).or_insert(0) += 1;
                keys = keys.add(
                    Condition::all()
                        .add(embedding_chunk::Column::ContentHash.eq(c.content_hash.clone()))
                        .add(embedding_chunk::Column::Model.eq(c.model.clone()))
                        .add(embedding_chunk::Column::ChunkIndex.eq(c.chunk_index)),
                );
            }
            let n = embedding_chunk::Entity::delete_many()
                .filter(keys)
                .exec(db)
                .await
                .map_err(e)?
                .rows_affected;
            rows += n;
            batches += 1;
            if (picked.len() as u64) < batch {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(self.settings.pause_ms)).await;
        }
        let mut counts = BTreeMap::from([
            ("chunks_deleted".to_owned(), rows),
            ("bytes_freed".to_owned(), bytes),
            ("batches".to_owned(), batches),
            ("models_in_use".to_owned(), in_use.len() as u64),
        ]);
        counts.insert("models_dropped".to_owned(), models.len() as u64);
        Ok(JobOutcome {
            summary: format!("dropped {rows} cached chunks, {bytes} bytes freed"),
            counts,
        })
    }
}

impl Job for OptimizeEmbeddingCache {
    fn name(&self) -> &'static str {
        "optimizeEmbeddingCache"
    }

    fn run<'a>(
        &'a self,
        _scheduled_for: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(self.optimize(Utc::now()))
    }
}
