//! Events of `contextual.events`: file uploads and processing, embeddings, search.
//!
//! Beyond the design (optional fields, so events of the design's shape decode):
//! `file.processing.completed` carries the extracted text's `content_hash` and a
//! `text_preview`; `embedding.generation.requested` carries `text_ref` (the stored
//! extraction holding the whole text, when `text_content` is only its beginning);
//! `search.index.update.requested` carries the `content_hash` and `model` to index;
//! `embedding.generation.completed` carries `error` when the embedding failed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{event_type, streams::CONTEXTUAL};

/// `file.uploaded`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileUploaded {
    pub file_id: String,
    pub user_id: String,
    pub contextual_core_id: String,
    pub filename: String,
    pub file_size: u64,
    pub mime_type: String,
    pub is_browser_viewable: bool,
}
event_type!(FileUploaded, "file.uploaded", CONTEXTUAL);

/// The kinds of file processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingType {
    TextExtraction,
    EmbeddingGeneration,
    MetadataAnalysis,
}

/// `file.processing.started`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileProcessingStarted {
    pub file_id: String,
    pub processing_type: ProcessingType,
    pub estimated_duration_ms: f64,
}
event_type!(FileProcessingStarted, "file.processing.started", CONTEXTUAL);

/// `file.processing.completed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileProcessingCompleted {
    pub file_id: String,
    /// A string in the design (not the enum), so other kinds can be reported.
    pub processing_type: String,
    pub processing_time_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted_text_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_model_used: Option<String>,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// SHA-256 of the extracted text, hex (text extraction only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The text's first characters (text extraction only), for the embedding
    /// request that follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_preview: Option<String>,
}
event_type!(
    FileProcessingCompleted,
    "file.processing.completed",
    CONTEXTUAL
);

/// `file.text_extraction.requested` (step 1 of the design's FileProcessingSaga).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileTextExtractionRequested {
    pub file_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}
event_type!(
    FileTextExtractionRequested,
    "file.text_extraction.requested",
    CONTEXTUAL
);

/// Request priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
}

/// `embedding.generation.requested`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmbeddingGenerationRequested {
    pub text_content: String,
    pub content_hash: String,
    pub user_id: String,
    pub contextual_core_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_model: Option<String>,
    pub priority: Priority,
    /// Where the whole text is when `text_content` holds only its beginning: the
    /// stored extraction of this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_ref: Option<TextRef>,
}

/// A reference to a stored text (see [`EmbeddingGenerationRequested::text_ref`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TextRef {
    /// The file whose extracted text it is.
    pub file_id: String,
}
event_type!(
    EmbeddingGenerationRequested,
    "embedding.generation.requested",
    CONTEXTUAL
);

/// `embedding.generation.completed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmbeddingGenerationCompleted {
    pub embedding_id: String,
    pub content_hash: String,
    pub model_id: String,
    pub dimensions: u32,
    pub generation_time_ms: f64,
    pub cost_usd: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<f64>,
    /// Set when the embedding failed (and will not succeed by retrying): the saga
    /// fails the step at once instead of waiting out its timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
event_type!(
    EmbeddingGenerationCompleted,
    "embedding.generation.completed",
    CONTEXTUAL
);

/// `search.index.update.requested` (step 3 of the FileProcessingSaga).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchIndexUpdateRequested {
    pub file_id: String,
    /// The text's hash and the model of its embeddings (when the requester knows;
    /// otherwise the indexer looks them up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}
event_type!(
    SearchIndexUpdateRequested,
    "search.index.update.requested",
    CONTEXTUAL
);

/// `search.index.update.completed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchIndexUpdateCompleted {
    pub file_id: String,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents_indexed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
event_type!(
    SearchIndexUpdateCompleted,
    "search.index.update.completed",
    CONTEXTUAL
);

/// `file.text_extraction.revert.requested`: compensation of the saga's text
/// extraction (drop the extracted text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileTextExtractionRevertRequested {
    pub file_id: String,
}
event_type!(
    FileTextExtractionRevertRequested,
    "file.text_extraction.revert.requested",
    CONTEXTUAL
);

/// `embedding.deletion.requested`: compensation of the saga's embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmbeddingDeletionRequested {
    pub content_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_id: Option<String>,
}
event_type!(
    EmbeddingDeletionRequested,
    "embedding.deletion.requested",
    CONTEXTUAL
);

/// `search.index.removal.requested`: compensation of the saga's index update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchIndexRemovalRequested {
    pub file_id: String,
}
event_type!(
    SearchIndexRemovalRequested,
    "search.index.removal.requested",
    CONTEXTUAL
);
