//! One trait for every embeddings backend: the offline hashed n-grams, and any
//! OpenAI-compatible `/embeddings` server.
//!
//! Invariants an implementation keeps:
//! - `embed` returns exactly one vector per input text, in the inputs' order, each
//!   of `dimensions()` numbers (once `dimensions()` is known: an HTTP embedder may
//!   report 0 until its first answer), and never panics on a bad answer.
//! - Errors follow the text providers' rules: a retryable failure (429, 5xx, a
//!   timeout, a cut connection) was already retried inside the call, honouring
//!   `Retry-After`, before it comes back as [`EmbedError::Retryable`]; anything that
//!   would fail the same way again is [`EmbedError::Permanent`]; no message holds an
//!   API key.
//!
//! [`EmbedError`] *is* [`crate::ai::ProviderError`]: the two would be identical,
//! variant for variant, and sharing the type lets the one HTTP sender
//! (`ai::http_call`) serve both kinds of provider without a conversion, and lets a
//! worker map either kind of failure onto the engine's retry the same way.

use futures_util::future::BoxFuture;

pub use crate::ai::provider::ProviderError as EmbedError;

/// What an embedding call produced, with what the provider counted for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// One vector per input text, in the inputs' order.
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens as the provider counted them (summed over its batches); 0 for
    /// an embedder that counts none, such as the offline one.
    pub tokens: u64,
}

/// An embeddings backend.
pub trait Embedder: Send + Sync {
    /// The name callers use to choose it, e.g. `offline` or `openai`.
    fn name(&self) -> &str;
    /// The model it asks for, e.g. `text-embedding-3-small`. Vectors of two models
    /// cannot be compared.
    fn model(&self) -> &str;
    /// The length of its vectors; 0 while an HTTP embedder has not learned it yet.
    fn dimensions(&self) -> u32;
    /// One vector per text of `texts`, in order.
    fn embed<'a>(&'a self, texts: &'a [String])
    -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;

    /// As [`Embedder::embed`], with the tokens the provider counted, for pricing
    /// with [`crate::embeddings::Embedders::cost`]. By default counts none.
    fn embed_with_usage<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Embedded, EmbedError>> {
        Box::pin(async move {
            let vectors = self.embed(texts).await?;
            Ok(Embedded { vectors, tokens: 0 })
        })
    }
}
