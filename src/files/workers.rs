//! The file pipeline's handlers: the design's processFile, extractText and
//! generateEmbedding, the search index, and the three compensations.
//!
//! - `file-processor`: `file.uploaded` (checks the stored bytes are there and
//!   whole), `file.text_extraction.requested` (extracts and stores the text, reports
//!   `file.processing.started` and `.completed`), `file.text_extraction.revert.requested`.
//! - `embedding-generator`: `embedding.generation.requested` (chunks the text,
//!   embeds what the cache does not have, reports `embedding.generation.completed`),
//!   `embedding.deletion.requested`.
//! - `search-indexer`: `search.index.update.requested`, `search.index.removal.requested`.
//!
//! Invariants: every effect is idempotent (a redelivered request writes nothing
//! twice and re-publishes the same events: their ids are derived from the request
//! event's id and published through a de-duplicating publisher); a file that cannot
//! be read (corrupt, encrypted, unsupported, too slow) is a completed step with
//! `success: false` and a readable error, never a panic or a stuck worker; a
//! compensation removes only what its step made.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use strategist_actors::{Envelope, Event, EventType, HandlerError, Pool, Publisher};

use super::extract::{self, Limits};
use super::storage::FileStore;
use crate::database::{Db, retry};
use crate::embeddings::{Embedders, chunk::chunk};
use crate::events::contextual::{
    EmbeddingDeletionRequested, EmbeddingGenerationCompleted, EmbeddingGenerationRequested,
    FileProcessingCompleted, FileProcessingStarted, FileTextExtractionRequested,
    FileTextExtractionRevertRequested, FileUploaded, ProcessingType, SearchIndexRemovalRequested,
    SearchIndexUpdateCompleted, SearchIndexUpdateRequested,
};
use crate::events::derived_id;
use crate::store::entities::file_text;
use crate::store::files::ChunkVector;

/// Characters of the text carried in the embedding request (the rest is read from
/// the stored extraction).
pub const PREVIEW_CHARS: usize = 2000;

/// How long re-published events are recognised as the same.
const DEDUPE_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// What the file handlers need.
pub struct FileWorkers {
    db: Db,
    publisher: Publisher,
    files: FileStore,
    limits: Limits,
    embedders: Arc<Embedders>,
    chunk_chars: usize,
    overlap_chars: usize,
}

fn sha256_hex(text: &str) -> String {
    super::storage::hex(&Sha256::digest(text.as_bytes()))
}

impl FileWorkers {
    /// Handlers over `publisher` (de-duplicating its own publishes for a day).
    pub fn new(
        db: Db,
        publisher: Publisher,
        files: FileStore,
        limits: Limits,
        embedders: Arc<Embedders>,
        chunk_chars: usize,
        overlap_chars: usize,
    ) -> Self {
        FileWorkers {
            db,
            publisher: publisher.with_dedupe_window_ms(DEDUPE_WINDOW_MS),
            files,
            limits,
            embedders,
            chunk_chars,
            overlap_chars,
        }
    }

    /// The `file-processor` pool's handlers.
    pub fn register_file_processor(self: &Arc<Self>, pool: &mut Pool) {
        let w = self.clone();
        pool.on(move |ev: Event<FileUploaded>| {
            let w = w.clone();
            async move { w.check_upload(ev).await }
        });
        let w = self.clone();
        pool.on(move |ev: Event<FileTextExtractionRequested>| {
            let w = w.clone();
            async move { w.extract_text(ev).await }
        });
        let w = self.clone();
        pool.on(move |ev: Event<FileTextExtractionRevertRequested>| {
            let w = w.clone();
            async move {
                w.db.get()?
                    .delete_text(&ev.data.file_id)
                    .await
                    .map_err(retry)?;
                Ok(())
            }
        });
    }

    /// The `embedding-generator` pool's handlers.
    pub fn register_embedding_generator(self: &Arc<Self>, pool: &mut Pool) {
        let w = self.clone();
        pool.on(move |ev: Event<EmbeddingGenerationRequested>| {
            let w = w.clone();
            async move { w.embed(ev).await }
        });
        let w = self.clone();
        pool.on(move |ev: Event<EmbeddingDeletionRequested>| {
            let w = w.clone();
            async move {
                // The saga's correlation id is its file.
                let file = ev.envelope.correlation_id.clone().unwrap_or_default();
                if !ev.data.content_hash.is_empty() {
                    w.db.get()?
                        .delete_chunks_unless_used(&ev.data.content_hash, &file)
                        .await
                        .map_err(retry)?;
                }
                Ok(())
            }
        });
    }

    /// The `search-indexer` pool's handlers.
    pub fn register_search_indexer(self: &Arc<Self>, pool: &mut Pool) {
        let w = self.clone();
        pool.on(move |ev: Event<SearchIndexUpdateRequested>| {
            let w = w.clone();
            async move { w.index(ev).await }
        });
        let w = self.clone();
        pool.on(move |ev: Event<SearchIndexRemovalRequested>| {
            let w = w.clone();
            async move {
                w.db.get()?
                    .unindex_file(&ev.data.file_id)
                    .await
                    .map_err(retry)?;
                Ok(())
            }
        });
    }

    async fn publish<T: EventType>(
        &self,
        data: &T,
        cause: &Envelope,
        purpose: &str,
    ) -> Result<(), HandlerError> {
        let mut env = Envelope::new(
            T::TYPE,
            T::VERSION,
            serde_json::to_value(data).map_err(HandlerError::permanent)?,
        )
        .caused_by(cause);
        env.user_id = cause.user_id.clone();
        env.id = derived_id(cause, purpose);
        self.publisher
            .publish(T::STREAM, &env)
            .await
            .map(|_| ())
            .map_err(HandlerError::retryable)
    }

    /// `file.uploaded`: the bytes the event names are on disk, whole.
    async fn check_upload(&self, ev: Event<FileUploaded>) -> Result<(), HandlerError> {
        let store = self.db.get()?;
        let Some(f) = store.file(&ev.data.file_id).await.map_err(retry)? else {
            // Uploaded elsewhere (not through this service): nothing of ours to check.
            return Ok(());
        };
        let path = self.files.path_of(&f.sha256);
        let meta = tokio::fs::metadata(&path).await.map_err(|e| {
            HandlerError::permanent(format!(
                "file {} is missing from the files directory: {e}",
                f.id
            ))
        })?;
        if meta.len() != u64::try_from(f.size).unwrap_or(u64::MAX) {
            return Err(HandlerError::permanent(format!(
                "file {} has {} bytes on disk, {} recorded",
                f.id,
                meta.len(),
                f.size
            )));
        }
        Ok(())
    }

    /// Whether the request belongs to a saga that already failed (or is undoing its
    /// steps): a late request (a redelivery, a step that timed out and ran anyway)
    /// must not recreate what the compensations removed.
    async fn saga_ended(&self, request: &Envelope) -> Result<bool, HandlerError> {
        let Some(saga) = request.correlation_id.as_deref() else {
            return Ok(false);
        };
        let state = self.db.get()?.saga(saga).await.map_err(retry)?;
        let ended = state.is_some_and(|s| {
            matches!(
                s.status,
                strategist_actors::SagaStatus::Failed | strategist_actors::SagaStatus::Compensating
            )
        });
        if ended {
            tracing::info!(saga, event_id = %request.id, "a step's request came after its saga failed; skipped");
        }
        Ok(ended)
    }

    /// The design's extractText.
    async fn extract_text(
        &self,
        ev: Event<FileTextExtractionRequested>,
    ) -> Result<(), HandlerError> {
        if self.saga_ended(&ev.envelope).await? {
            return Ok(());
        }
        let store = self.db.get()?;
        let file_id = ev.data.file_id.clone();
        let started_at = Instant::now();
        let report =
            |success: bool, error: Option<String>, t: Option<&file_text::Model>, ms: f64| {
                FileProcessingCompleted {
                    file_id: file_id.clone(),
                    processing_type: "text_extraction".into(),
                    processing_time_ms: ms,
                    extracted_text_length: t.map(|t| u64::try_from(t.length).unwrap_or(0)),
                    embedding_model_used: None,
                    success,
                    error,
                    content_hash: t.map(|t| t.content_hash.clone()),
                    text_preview: t.map(|t| t.text.chars().take(PREVIEW_CHARS).collect()),
                }
            };
        // Done before (a redelivery): report the same outcome again.
        if let Some(t) = store.file_text(&file_id).await.map_err(retry)? {
            let done = report(true, None, Some(&t), 0.0);
            return self.publish(&done, &ev.envelope, "completed").await;
        }
        let Some(f) = store.file(&file_id).await.map_err(retry)? else {
            let done = report(false, Some(format!("no file {file_id}")), None, 0.0);
            return self.publish(&done, &ev.envelope, "completed").await;
        };
        let started = FileProcessingStarted {
            file_id: file_id.clone(),
            processing_type: ProcessingType::TextExtraction,
            estimated_duration_ms: estimate_ms(f.size),
        };
        self.publish(&started, &ev.envelope, "started").await?;
        let path = self.files.path_of(&f.sha256);
        let outcome = extract::extract(path, f.mime_type.clone(), self.limits.clone()).await;
        let ms = started_at.elapsed().as_secs_f64() * 1000.0;
        let done = match outcome {
            Ok(x) if x.text.trim().is_empty() => report(
                false,
                Some("no text found in the file (a scan or an image?)".into()),
                None,
                ms,
            ),
            Ok(mut x) => {
                // No database text column takes a NUL (PostgreSQL refuses it).
                if x.text.contains('\0') {
                    x.text = x.text.replace('\0', "\u{FFFD}");
                }
                let t = file_text::Model {
                    file_id: file_id.clone(),
                    content_hash: sha256_hex(&x.text),
                    length: i64::try_from(x.text.chars().count()).unwrap_or(i64::MAX),
                    kind: format!("{:?}", x.kind).to_lowercase(),
                    truncated: x.truncated,
                    text: x.text,
                    extracted_at_ms: chrono::Utc::now().timestamp_millis(),
                };
                store.save_text(t).await.map_err(retry)?;
                // The first extraction stored wins (a concurrent one may have).
                let stored = store.file_text(&file_id).await.map_err(retry)?;
                report(true, None, stored.as_ref(), ms)
            }
            // Including a file that cannot be read (missing from the files directory):
            // reported at once, so the saga fails with the reason instead of waiting.
            Err(e) => report(false, Some(e.to_string()), None, ms),
        };
        self.publish(&done, &ev.envelope, "completed").await
    }

    /// The design's generateEmbedding: every chunk of the text, once per text and model.
    async fn embed(&self, ev: Event<EmbeddingGenerationRequested>) -> Result<(), HandlerError> {
        if self.saga_ended(&ev.envelope).await? {
            return Ok(());
        }
        match self.embed_text(&ev).await {
            Ok(done) => self.publish(&done, &ev.envelope, "completed").await,
            // A failure that will not go away: the saga hears it now, not after its
            // step timeouts.
            Err(e) if !e.is_retryable() => {
                self.embedding_failed(&ev.envelope, &e.to_string()).await
            }
            Err(e) => Err(e),
        }
    }

    /// Reports a failed embedding step (`error` set on the completion).
    async fn embedding_failed(&self, cause: &Envelope, error: &str) -> Result<(), HandlerError> {
        let failed = EmbeddingGenerationCompleted {
            embedding_id: String::new(),
            content_hash: cause
                .data
                .get("content_hash")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            model_id: String::new(),
            dimensions: 0,
            generation_time_ms: 0.0,
            cost_usd: 0.0,
            quality_score: None,
            error: Some(error.to_string()),
        };
        self.publish(&failed, cause, "completed").await
    }

    /// A step of this group that was dead-lettered (retries used up, a timeout, a
    /// panic) is reported as failed to its saga at once. Called from an engine
    /// thread: the work is spawned.
    pub fn dead_lettered(self: &Arc<Self>, d: &strategist_actors::DeadLetter) {
        let Some(env) = d.envelope.clone() else {
            return;
        };
        let error = format!(
            "{}: {} after {} attempts",
            d.reason.as_str(),
            d.error,
            d.attempts
        );
        let w = self.clone();
        match env.event_type.as_str() {
            EmbeddingGenerationRequested::TYPE => {
                actix::spawn(async move {
                    if let Err(e) = w.embedding_failed(&env, &error).await {
                        tracing::warn!(error = %e, "could not report a dead-lettered embedding step");
                    }
                });
            }
            SearchIndexUpdateRequested::TYPE => {
                actix::spawn(async move {
                    let failed = SearchIndexUpdateCompleted {
                        file_id: env
                            .data
                            .get("file_id")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_string(),
                        success: false,
                        documents_indexed: None,
                        error: Some(error),
                    };
                    if let Err(e) = w.publish(&failed, &env, "completed").await {
                        tracing::warn!(error = %e, "could not report a dead-lettered index step");
                    }
                });
            }
            _ => {}
        }
    }

    async fn embed_text(
        &self,
        ev: &Event<EmbeddingGenerationRequested>,
    ) -> Result<EmbeddingGenerationCompleted, HandlerError> {
        let store = self.db.get()?;
        let req = &ev.data;
        if let Some(r) = &req.text_ref {
            match store.file(&r.file_id).await.map_err(retry)? {
                Some(f) if f.user_id == req.user_id => {}
                _ => {
                    return Err(HandlerError::permanent(format!(
                        "file {} is not {}'s",
                        r.file_id, req.user_id
                    )));
                }
            }
        }
        let text = match &req.text_ref {
            Some(r) => match store.file_text(&r.file_id).await.map_err(retry)? {
                Some(t) => t.text,
                None => {
                    return Err(HandlerError::permanent(format!(
                        "the text of file {} is gone (reverted?)",
                        r.file_id
                    )));
                }
            },
            None => req.text_content.clone(),
        };
        if text.trim().is_empty() {
            return Err(HandlerError::permanent(
                "text_content: empty; nothing to embed",
            ));
        }
        let hash = sha256_hex(&text);
        if !req.content_hash.is_empty() && req.content_hash != hash {
            return Err(HandlerError::permanent(format!(
                "content_hash {} does not match the text (sha256 {hash})",
                req.content_hash
            )));
        }
        let preferred = match req.preferred_model.clone() {
            Some(m) => Some(m),
            None => store
                .preferences(&req.user_id)
                .await
                .map_err(retry)?
                .and_then(|p| p.embedding_model),
        };
        let embedder = self
            .embedders
            .choose(preferred.as_deref())
            .or_else(|_| self.embedders.choose(None))
            .map_err(HandlerError::permanent)?;
        let model = embedder.model().to_string();
        let started = Instant::now();
        let mut cost = 0.0;
        let mut dims = embedder.dimensions();
        if store.cached_chunks(&hash, &model).await.map_err(retry)? == 0 {
            // Chunking a long text is seconds of CPU: off the worker's thread, which
            // other actors share.
            let (max, overlap) = (self.chunk_chars, self.overlap_chars);
            let text = text.clone();
            let chunks = tokio::task::spawn_blocking(move || chunk(&text, max, overlap))
                .await
                .map_err(|e| HandlerError::retryable(format!("chunking: {e}")))?;
            let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
            let out = embedder
                .embed_with_usage(&texts)
                .await
                .map_err(|e| match e {
                    crate::embeddings::EmbedError::Retryable { message, .. } => {
                        HandlerError::retryable(message)
                    }
                    crate::embeddings::EmbedError::Permanent(m) => HandlerError::permanent(m),
                })?;
            if out.vectors.len() != chunks.len() {
                return Err(HandlerError::retryable(format!(
                    "{} vectors for {} chunks",
                    out.vectors.len(),
                    chunks.len()
                )));
            }
            dims = out
                .vectors
                .first()
                .map_or(dims, |v| u32::try_from(v.len()).unwrap_or(0));
            cost = self.embedders.cost(&model, out.tokens);
            let rows: Vec<ChunkVector> = chunks
                .into_iter()
                .zip(out.vectors)
                .map(|(c, vector)| ChunkVector {
                    index: c.index,
                    start: c.start,
                    end: c.end,
                    text: c.text,
                    vector,
                })
                .collect();
            store
                .save_chunks(&hash, &model, &rows)
                .await
                .map_err(retry)?;
        }
        Ok(EmbeddingGenerationCompleted {
            embedding_id: format!("{hash}:{model}"),
            content_hash: hash,
            model_id: model,
            dimensions: dims,
            generation_time_ms: started.elapsed().as_secs_f64() * 1000.0,
            cost_usd: cost,
            quality_score: None,
            error: None,
        })
    }

    /// Makes the file's chunks searchable in its core.
    async fn index(&self, ev: Event<SearchIndexUpdateRequested>) -> Result<(), HandlerError> {
        if self.saga_ended(&ev.envelope).await? {
            return Ok(());
        }
        let store = self.db.get()?;
        let req = &ev.data;
        let fail = |error: String| SearchIndexUpdateCompleted {
            file_id: req.file_id.clone(),
            success: false,
            documents_indexed: None,
            error: Some(error),
        };
        let Some(f) = store.file(&req.file_id).await.map_err(retry)? else {
            return self
                .publish(
                    &fail(format!("no file {}", req.file_id)),
                    &ev.envelope,
                    "completed",
                )
                .await;
        };
        let hash = match &req.content_hash {
            Some(h) => h.clone(),
            None => match store.file_text(&f.id).await.map_err(retry)? {
                Some(t) => t.content_hash,
                None => {
                    return self
                        .publish(
                            &fail("the file has no extracted text".into()),
                            &ev.envelope,
                            "completed",
                        )
                        .await;
                }
            },
        };
        let model = match &req.model {
            Some(m) => m.clone(),
            None => self
                .embedders
                .choose(None)
                .map_err(HandlerError::permanent)?
                .model()
                .to_string(),
        };
        let indexed = store.index_file(&f, &hash, &model).await.map_err(retry)?;
        let done = if indexed == 0 {
            fail(format!("no embeddings of this text with {model}"))
        } else {
            SearchIndexUpdateCompleted {
                file_id: f.id.clone(),
                success: true,
                documents_indexed: Some(indexed),
                error: None,
            }
        };
        self.publish(&done, &ev.envelope, "completed").await
    }
}

/// A rough extraction time for `file.processing.started`: about 20 MB/s.
fn estimate_ms(size: i64) -> f64 {
    (size.max(0) as f64 / 20_000.0).max(1.0)
}
