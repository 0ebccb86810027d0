//! The design's FileProcessingSaga: text extraction, embeddings, search index, then
//! the user is notified. A step that fails for good undoes the steps before it (in
//! reverse) and the user is told the processing failed (`handleSagaFailure`).
//!
//! Until the file pipeline fills the embedding request with the extracted text, the
//! request carries the file as `content_hash = "file:<file_id>"` and an empty
//! `text_content`; the embedding worker finds the text by the saga's correlation id.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strategist_actors::{Envelope, EventType, SagaDefinition, SagaStep};

use crate::events::contextual::{
    EmbeddingDeletionRequested, EmbeddingGenerationCompleted, EmbeddingGenerationRequested,
    FileProcessingCompleted, FileTextExtractionRequested, FileTextExtractionRevertRequested,
    FileUploaded, Priority, SearchIndexRemovalRequested, SearchIndexUpdateCompleted,
    SearchIndexUpdateRequested,
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
                Ok(json!({"extracted_text_length": c.extracted_text_length}))
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
                text_content: String::new(),
                content_hash: format!("file:{}", s(d, "file_id")),
                user_id: s(d, "user_id"),
                contextual_core_id: s(d, "contextual_core_id"),
                preferred_model: None,
                priority: Priority::Normal,
            })
        }),
        completion: Some(EmbeddingGenerationCompleted::TYPE.into()),
        on_complete: Arc::new(|e| {
            let c: EmbeddingGenerationCompleted = serde_json::from_value(e.data.clone()).ok()?;
            Some(Ok(
                json!({"embedding_id": c.embedding_id, "model_id": c.model_id}),
            ))
        }),
        compensation: Some(Arc::new(|d| {
            ev(&EmbeddingDeletionRequested {
                content_hash: format!("file:{}", s(d, "file_id")),
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
