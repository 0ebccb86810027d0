//! Files, their extracted text, the chunk-embedding cache and the search index.
//!
//! Invariants: every write is idempotent (a redelivered step writes nothing twice:
//! primary keys with `ON CONFLICT DO NOTHING`); the embeddings of a text are keyed by
//! its SHA-256 and the model, so the same text is embedded once however many files
//! carry it; a compensation removes only what its step made, and embeddings only
//! when no indexed file still uses them.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use super::entities::{embedding_chunk, file, file_text, index_entry};
use super::{Store, StoreError};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A vector as stored: little-endian f32s.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector.
pub fn decode_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One chunk of a text with its vector, to store.
#[derive(Debug, Clone)]
pub struct ChunkVector {
    /// Position in the text.
    pub index: u32,
    /// First character.
    pub start: usize,
    /// One past the last.
    pub end: usize,
    /// The chunk.
    pub text: String,
    /// Its embedding.
    pub vector: Vec<f32>,
}

/// A chunk a contextual core can find, with its vector.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The file.
    pub file_id: String,
    /// Its name.
    pub filename: String,
    /// The chunk's position.
    pub chunk_index: i32,
    /// First character in the file's text.
    pub start: i64,
    /// One past the last.
    pub end: i64,
    /// The chunk.
    pub text: String,
    /// The model of its vector.
    pub model: String,
    /// Its vector.
    pub vector: Vec<f32>,
}

impl Store {
    /// Records an upload.
    pub async fn record_file(&self, f: file::Model) -> Result<(), StoreError> {
        file::Entity::insert(file::ActiveModel::from(f))
            .on_conflict_do_nothing_on([file::Column::Id])
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Removes a file's record (an upload whose processing could not start).
    pub async fn forget_file(&self, id: &str) -> Result<(), StoreError> {
        file::Entity::delete_by_id(id.to_string())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A file by id.
    pub async fn file(&self, id: &str) -> Result<Option<file::Model>, StoreError> {
        Ok(file::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?)
    }

    /// A user's files, oldest first, after `after`.
    pub async fn files(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<file::Model>, StoreError> {
        let mut q = file::Entity::find().filter(file::Column::UserId.eq(user_id));
        if let Some(a) = after {
            q = q.filter(file::Column::Id.gt(a));
        }
        Ok(q.order_by_asc(file::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Stores a file's text (the first extraction wins; a repeat writes nothing).
    pub async fn save_text(&self, t: file_text::Model) -> Result<(), StoreError> {
        file_text::Entity::insert(file_text::ActiveModel::from(t))
            .on_conflict_do_nothing_on([file_text::Column::FileId])
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A file's text.
    pub async fn file_text(&self, file_id: &str) -> Result<Option<file_text::Model>, StoreError> {
        Ok(file_text::Entity::find_by_id(file_id.to_string())
            .one(&self.db)
            .await?)
    }

    /// A file's text length and whether it was cut, without reading the text.
    pub async fn file_text_size(&self, file_id: &str) -> Result<Option<(i64, bool)>, StoreError> {
        Ok(file_text::Entity::find_by_id(file_id.to_string())
            .select_only()
            .column(file_text::Column::Length)
            .column(file_text::Column::Truncated)
            .into_tuple()
            .one(&self.db)
            .await?)
    }

    /// Removes a file's text (compensation); true if there was one.
    pub async fn delete_text(&self, file_id: &str) -> Result<bool, StoreError> {
        let r = file_text::Entity::delete_by_id(file_id.to_string())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    /// How many chunks of `content_hash` are embedded with `model`.
    pub async fn cached_chunks(&self, content_hash: &str, model: &str) -> Result<u64, StoreError> {
        Ok(embedding_chunk::Entity::find()
            .filter(embedding_chunk::Column::ContentHash.eq(content_hash))
            .filter(embedding_chunk::Column::Model.eq(model))
            .count(&self.db)
            .await?)
    }

    /// Stores a text's chunk vectors, all or none; chunks already there stay.
    pub async fn save_chunks(
        &self,
        content_hash: &str,
        model: &str,
        chunks: &[ChunkVector],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        let now = now_ms();
        // Bounded statements: SQLite allows some 32k parameters per statement.
        for part in chunks.chunks(200) {
            let rows = part.iter().map(|c| embedding_chunk::ActiveModel {
                content_hash: Set(content_hash.to_string()),
                model: Set(model.to_string()),
                chunk_index: Set(i32::try_from(c.index).unwrap_or(i32::MAX)),
                start_char: Set(i64::try_from(c.start).unwrap_or(i64::MAX)),
                end_char: Set(i64::try_from(c.end).unwrap_or(i64::MAX)),
                text: Set(c.text.clone()),
                vector: Set(encode_vector(&c.vector)),
                dimensions: Set(i32::try_from(c.vector.len()).unwrap_or(i32::MAX)),
                created_at_ms: Set(now),
            });
            embedding_chunk::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([
                    embedding_chunk::Column::ContentHash,
                    embedding_chunk::Column::Model,
                    embedding_chunk::Column::ChunkIndex,
                ])
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Removes a text's vectors (the compensation of `for_file`'s embedding step)
    /// unless they may still serve another file: one in the index, or any other
    /// file whose extracted text has the same hash (it is being, or will be,
    /// embedded from this cache). Returns how many were removed.
    pub async fn delete_chunks_unless_used(
        &self,
        content_hash: &str,
        for_file: &str,
    ) -> Result<u64, StoreError> {
        let txn = self.begin_write().await?;
        let indexed = index_entry::Entity::find()
            .filter(index_entry::Column::ContentHash.eq(content_hash))
            .count(&*txn)
            .await?;
        let others = file_text::Entity::find()
            .filter(file_text::Column::ContentHash.eq(content_hash))
            .filter(file_text::Column::FileId.ne(for_file))
            .count(&*txn)
            .await?;
        if indexed > 0 || others > 0 {
            txn.commit().await?;
            return Ok(0);
        }
        let r = embedding_chunk::Entity::delete_many()
            .filter(embedding_chunk::Column::ContentHash.eq(content_hash))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(r.rows_affected)
    }

    /// Makes every chunk of the file's text (embedded with `model`) searchable in its
    /// core; returns how many chunks the file has in the index.
    pub async fn index_file(
        &self,
        f: &file::Model,
        content_hash: &str,
        model: &str,
    ) -> Result<u64, StoreError> {
        let indices: Vec<i32> = embedding_chunk::Entity::find()
            .select_only()
            .column(embedding_chunk::Column::ChunkIndex)
            .filter(embedding_chunk::Column::ContentHash.eq(content_hash))
            .filter(embedding_chunk::Column::Model.eq(model))
            .into_tuple()
            .all(&self.db)
            .await?;
        let now = now_ms();
        let txn = self.db.begin().await?;
        for part in indices.chunks(500) {
            let rows = part.iter().map(|i| index_entry::ActiveModel {
                file_id: Set(f.id.clone()),
                chunk_index: Set(*i),
                user_id: Set(f.user_id.clone()),
                contextual_core_id: Set(f.contextual_core_id.clone()),
                content_hash: Set(content_hash.to_string()),
                model: Set(model.to_string()),
                indexed_at_ms: Set(now),
            });
            index_entry::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([
                    index_entry::Column::FileId,
                    index_entry::Column::ChunkIndex,
                ])
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(index_entry::Entity::find()
            .filter(index_entry::Column::FileId.eq(&f.id))
            .count(&self.db)
            .await?)
    }

    /// Removes a file from the index (compensation); returns the rows removed.
    pub async fn unindex_file(&self, file_id: &str) -> Result<u64, StoreError> {
        Ok(index_entry::Entity::delete_many()
            .filter(index_entry::Column::FileId.eq(file_id))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Chunks of a file in the index.
    pub async fn indexed_chunks(&self, file_id: &str) -> Result<u64, StoreError> {
        Ok(index_entry::Entity::find()
            .filter(index_entry::Column::FileId.eq(file_id))
            .count(&self.db)
            .await?)
    }

    /// Every chunk `user_id`'s core `contextual_core_id` can find, with its vector.
    /// Exact search reads them all; an ANN index would take this over.
    pub async fn search_candidates(
        &self,
        user_id: &str,
        contextual_core_id: &str,
    ) -> Result<Vec<Candidate>, StoreError> {
        let entries = index_entry::Entity::find()
            .filter(index_entry::Column::UserId.eq(user_id))
            .filter(index_entry::Column::ContextualCoreId.eq(contextual_core_id))
            .all(&self.db)
            .await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: BTreeSet<(String, String)> = entries
            .iter()
            .map(|e| (e.content_hash.clone(), e.model.clone()))
            .collect();
        let mut vectors: BTreeMap<(String, String, i32), embedding_chunk::Model> = BTreeMap::new();
        for (hash, model) in &hashes {
            for c in embedding_chunk::Entity::find()
                .filter(embedding_chunk::Column::ContentHash.eq(hash))
                .filter(embedding_chunk::Column::Model.eq(model))
                .all(&self.db)
                .await?
            {
                vectors.insert((c.content_hash.clone(), c.model.clone(), c.chunk_index), c);
            }
        }
        let file_ids: BTreeSet<String> = entries.iter().map(|e| e.file_id.clone()).collect();
        let names: BTreeMap<String, String> = file::Entity::find()
            .filter(file::Column::Id.is_in(file_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|f| (f.id, f.filename))
            .collect();
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                let c = vectors.get(&(e.content_hash.clone(), e.model.clone(), e.chunk_index))?;
                Some(Candidate {
                    filename: names.get(&e.file_id).cloned().unwrap_or_default(),
                    file_id: e.file_id,
                    chunk_index: e.chunk_index,
                    start: c.start_char,
                    end: c.end_char,
                    text: c.text.clone(),
                    model: e.model,
                    vector: decode_vector(&c.vector),
                })
            })
            .collect())
    }
}
