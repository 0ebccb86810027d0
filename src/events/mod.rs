//! Every event type of the design as a typed payload, bound to its stream.
//!
//! Field names and enum strings are the design's, exactly (snake_case); optional
//! fields may be absent or `null`; fields a newer producer adds are tolerated.
//! [`catalog`] registers them all with the engine; [`all`] lists them for schema
//! export and tests.

use schemars::JsonSchema;
use serde_json::Value;
use strategist_actors::{Catalog, EventType};

pub mod ai;
pub mod content;
pub mod contextual;
pub mod market;
pub mod notification;
pub mod streams;
pub mod system;
pub mod user;

/// Implements [`EventType`] for a payload; `ordered_by` names its ordering key,
/// the field that also picks its partition on a partitioned stream.
macro_rules! event_type {
    ($t:ty, $name:literal, $stream:expr) => {
        impl strategist_actors::EventType for $t {
            const TYPE: &'static str = $name;
            const STREAM: &'static str = $stream;
        }
    };
    ($t:ty, $name:literal, $stream:expr, ordered_by $key:literal) => {
        impl strategist_actors::EventType for $t {
            const TYPE: &'static str = $name;
            const STREAM: &'static str = $stream;
            const ORDERING_KEY: Option<&'static str> = Some($key);
        }
    };
}
pub(crate) use event_type;

/// What the application knows of one event type, beyond the engine's catalog entry.
pub struct TypeDef {
    /// The type name.
    pub name: &'static str,
    /// Its stream.
    pub stream: &'static str,
    /// Its current version.
    pub version: u32,
    /// Its JSON Schema.
    pub schema: fn() -> schemars::Schema,
    /// Decodes a payload as the type and encodes it again (for round-trip checks).
    pub reencode: fn(&Value) -> Result<Value, String>,
    register: fn(&mut Catalog),
}

fn def<T: EventType + JsonSchema>() -> TypeDef {
    TypeDef {
        name: T::TYPE,
        stream: T::STREAM,
        version: T::VERSION,
        schema: || schemars::schema_for!(T),
        reencode: |v| {
            let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
            serde_json::to_value(t).map_err(|e| e.to_string())
        },
        register: |c| {
            c.register::<T>();
        },
    }
}

/// Every event type, in stream order.
pub fn all() -> Vec<TypeDef> {
    vec![
        def::<user::UserRegistered>(),
        def::<user::UserPreferencesUpdated>(),
        def::<user::UserLogin>(),
        def::<user::UserEmbeddingModelChanged>(),
        def::<content::ContentDraftCreated>(),
        def::<content::ContentDraftUpdated>(),
        def::<content::ContentDraftPublished>(),
        def::<contextual::FileUploaded>(),
        def::<contextual::FileProcessingStarted>(),
        def::<contextual::FileProcessingCompleted>(),
        def::<contextual::FileTextExtractionRequested>(),
        def::<contextual::EmbeddingGenerationRequested>(),
        def::<contextual::EmbeddingGenerationCompleted>(),
        def::<contextual::SearchIndexUpdateRequested>(),
        def::<contextual::SearchIndexUpdateCompleted>(),
        def::<contextual::FileTextExtractionRevertRequested>(),
        def::<contextual::EmbeddingDeletionRequested>(),
        def::<contextual::SearchIndexRemovalRequested>(),
        def::<market::MarketDataCollectionStarted>(),
        def::<market::MarketDataCollected>(),
        def::<market::MarketTrendDetected>(),
        def::<ai::AiContentGenerationRequested>(),
        def::<ai::AiContentGenerationCompleted>(),
        def::<ai::AiConsultationRequested>(),
        def::<ai::AiConsultationCompleted>(),
        def::<ai::AiContentGenerationFailed>(),
        def::<ai::AiConsultationFailed>(),
        def::<notification::NotificationSendRequested>(),
        def::<notification::NotificationDelivered>(),
        def::<notification::BriefingGenerationScheduled>(),
        def::<system::SystemServiceHealth>(),
        def::<system::SystemErrorCritical>(),
        def::<system::SystemPerformanceDegraded>(),
        def::<system::SystemBenchPing>(),
    ]
}

/// The catalog of every type, with its upcasters.
pub fn catalog() -> Catalog {
    let mut c = Catalog::new();
    for d in all() {
        (d.register)(&mut c);
    }
    // Upcasters go here when a type gets a version 2, e.g.
    // c.upcaster("user.login", 1, |mut v| { v["new_field"] = json!(null); Ok(v) });
    c
}

#[cfg(test)]
mod roundtrip;

/// An event id derived from the event that caused it and a purpose: the same cause
/// and purpose always give the same id, so a handler that runs twice (a redelivery)
/// publishes the same event again, which a de-duplicating publisher drops. Keeps the
/// cause's timestamp, so ids still sort by time.
pub fn derived_id(cause: &strategist_actors::Envelope, purpose: &str) -> ulid::Ulid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}:{purpose}", cause.id).as_bytes());
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    ulid::Ulid::from_parts(cause.id.timestamp_ms(), u128::from_be_bytes(random))
}
