//! Search over a contextual core: the query is embedded with the model each indexed
//! chunk was embedded with, and chunks are ranked by exact cosine similarity.
//!
//! Invariants: only the caller's own core is read (the store filters by user and
//! core); vectors of different models are never compared; the result is the top `k`
//! by score, ties broken by file and position so it is stable. Exact search reads
//! every chunk of the core: fine for thousands of chunks; `Store::search_candidates`
//! is where an ANN index (or pgvector) would take over.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::embeddings::{Embedders, cosine};
use crate::store::{Store, StoreError};

/// One chunk found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// The file it is from.
    pub file_id: String,
    /// The file's name.
    pub filename: String,
    /// Its position among the file's chunks.
    pub chunk_index: i32,
    /// First character in the file's text.
    pub start: i64,
    /// One past its last character.
    pub end: i64,
    /// The chunk.
    pub text: String,
    /// Cosine similarity to the query, -1..=1.
    pub score: f32,
    /// The embedding model.
    pub model: String,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The query could not be embedded.
    #[error("cannot embed the query: {0}")]
    Embed(String),
}

/// The `k` chunks of `user_id`'s core nearest to `query`.
pub async fn search(
    store: &Store,
    embedders: &Embedders,
    user_id: &str,
    contextual_core_id: &str,
    query: &str,
    k: usize,
) -> Result<Vec<Hit>, SearchError> {
    let candidates = store.search_candidates(user_id, contextual_core_id).await?;
    let mut by_model: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for c in &candidates {
        if !by_model.contains_key(&c.model) {
            let e = embedders
                .choose(Some(&c.model))
                .map_err(SearchError::Embed)?;
            let mut v = e
                .embed(&[query.to_string()])
                .await
                .map_err(|e| SearchError::Embed(e.to_string()))?;
            by_model.insert(c.model.clone(), v.pop().unwrap_or_default());
        }
    }
    let mut hits: Vec<Hit> = candidates
        .into_iter()
        .map(|c| {
            let score = by_model.get(&c.model).map_or(0.0, |q| cosine(q, &c.vector));
            Hit {
                file_id: c.file_id,
                filename: c.filename,
                chunk_index: c.chunk_index,
                start: c.start,
                end: c.end,
                text: c.text,
                score: if score.is_finite() { score } else { 0.0 },
                model: c.model,
            }
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.file_id.cmp(&b.file_id))
            .then_with(|| a.chunk_index.cmp(&b.chunk_index))
    });
    hits.truncate(k);
    Ok(hits)
}
