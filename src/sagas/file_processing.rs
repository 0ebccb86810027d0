//! The design's FileProcessingSaga: text extraction, embeddings, search index, then
//! the user is notified. A step that fails for good undoes the steps before it (in
//! reverse) and the user is told the processing failed (`handleSagaFailure`).
//!
//! The embedding request carries the extracted text's real `content_hash`, its
//! beginning as `text_content` (never empty: a file with no text fails extraction)
//! and `text_ref` naming the file, whose stored extraction holds the whole text (a
//! stream entry should not carry megabytes). The index request names the hash and
//! the model the embeddings were made with.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strategist_actors::{Envelope, EventType, SagaDefinition, SagaStep};

use crate::events::contextual::{
    EmbeddingDeletionRequested, EmbeddingGenerationCompleted, EmbeddingGenerationRequested,
    FileProcessingCompleted, FileTextExtractionRequested, FileTextExtractionRevertRequested,
    FileUploaded, Priority, SearchIndexRemovalRequested, SearchIndexUpdateCompleted,
    SearchIndexUpdateRequested, TextRef,
};
use crate::events::notification::{
    Channel, Message, NotificationPriority, NotificationSendRequested, NotificationType,
};
use crate::events::streams;

/// The saga's name and consumer group.
pub const NAME: &str = "file-processing";

fn ev<T: EventType>(data: &T) -> Option<Envelope> {
    let v = serde_json::to_value(data).ok()?;
    Some(Envelope::new(T::TYPE, T::VERSION, v))
}

fn s(data: &Value, k: &str) -> String {
    data.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn notify(
    data: &Value,
    title: &str,
    body: String,
    kind: NotificationType,
    priority: NotificationPriority,
) -> Option<Envelope> {
    let mut e = ev(&NotificationSendRequested {
        user_id: s(data, "user_id"),
        notification_type: kind,
        channels: vec![Channel::Websocket],
        message: Message {
            title: title.to_owned(),
            body,
            action_url: None,
        },
        priority,
    })?;
    e.user_id = Some(s(data, "user_id"));
    Some(e)
}

/// The definition, with each waiting step's timeout and retries.
pub fn definition(step_timeout: Duration, step_retries: u32) -> SagaDefinition {
    let step = |name: &str| SagaStep {
        name: name.to_owned(),
        request: Arc::new(|_| None),
        completion: None,
        on_complete: Arc::new(|_| None),
        timeout: step_timeout,
        retries: step_retries,
        compensation: None,
    };
    let extraction = SagaStep {
        request: Arc::new(|d| {
            ev(&FileTextExtractionRequested {
                file_id: s(d, "file_id"),
                mime_type: Some(s(d, "mime_type")),
            })
        }),
        completion: Some(FileProcessingCompleted::TYPE.into()),
        on_complete: Arc::new(|e| {
            let c: FileProcessingCompleted = serde_json::from_value(e.data.clone()).ok()?;
            if c.processing_type != "text_extraction" {
                return None;
            }
            Some(if c.success {
                Ok(json!({
                    "extracted_text_length": c.extracted_text_length,
                    "content_hash": c.content_hash,
                    "text_preview": c.text_preview,
                }))
            } else {
                Err(c.error.unwrap_or_else(|| "text extraction failed".into()))
            })
        }),
        compensation: Some(Arc::new(|d| {
            ev(&FileTextExtractionRevertRequested {
                file_id: s(d, "file_id"),
            })
        })),
        ..step("text_extraction")
    };
    let embeddings = SagaStep {
        request: Arc::new(|d| {
            ev(&EmbeddingGenerationRequested {
                text_content: s(d, "text_preview"),
                content_hash: s(d, "content_hash"),
                user_id: s(d, "user_id"),
                contextual_core_id: s(d, "contextual_core_id"),
                preferred_model: None,
                priority: Priority::Normal,
                text_ref: Some(TextRef {
                    file_id: s(d, "file_id"),
                }),
            })
        }),
        completion: Some(EmbeddingGenerationCompleted::TYPE.into()),
        on_complete: Arc::new(|e| {
            let c: EmbeddingGenerationCompleted = serde_json::from_value(e.data.clone()).ok()?;
            Some(match c.error {
                Some(error) => Err(error),
                None => Ok(json!({"embedding_id": c.embedding_id, "model_id": c.model_id})),
            })
        }),
        compensation: Some(Arc::new(|d| {
            ev(&EmbeddingDeletionRequested {
                content_hash: s(d, "content_hash"),
                embedding_id: d
                    .get("embedding_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })),
        ..step("embeddings")
    };
    let index = SagaStep {
        request: Arc::new(|d| {
            ev(&SearchIndexUpdateRequested {
                file_id: s(d, "file_id"),
                content_hash: Some(s(d, "content_hash")).filter(|h| !h.is_empty()),
                model: Some(s(d, "model_id")).filter(|m| !m.is_empty()),
            })
        }),
        completion: Some(SearchIndexUpdateCompleted::TYPE.into()),
        on_complete: Arc::new(|e| {
            let c: SearchIndexUpdateCompleted = serde_json::from_value(e.data.clone()).ok()?;
            Some(if c.success {
                Ok(json!({}))
            } else {
                Err(c
                    .error
                    .unwrap_or_else(|| "search index update failed".into()))
            })
        }),
        compensation: Some(Arc::new(|d| {
            ev(&SearchIndexRemovalRequested {
                file_id: s(d, "file_id"),
            })
        })),
        ..step("search_index")
    };
    let done = SagaStep {
        request: Arc::new(|d| {
            notify(
                d,
                "File processed successfully",
                format!("{} is ready", s(d, "filename")),
                NotificationType::SystemAlert,
                NotificationPriority::Normal,
            )
        }),
        ..step("notify")
    };
    SagaDefinition {
        name: NAME.into(),
        stream: streams::CONTEXTUAL.into(),
        start_type: FileUploaded::TYPE.into(),
        start_data: Arc::new(|e| {
            let mut d = e.data.clone();
            if let (Value::Object(m), Some(u)) = (&mut d, &e.user_id) {
                m.entry("user_id").or_insert_with(|| json!(u));
            }
            d
        }),
        steps: vec![extraction, embeddings, index, done],
        on_failure: Some(Arc::new(|d, error| {
            notify(
                d,
                "File processing failed",
                format!("{}: {error}", s(d, "filename")),
                NotificationType::SystemAlert,
                NotificationPriority::High,
            )
        })),
    }
}
