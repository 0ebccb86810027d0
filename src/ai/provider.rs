//! One trait for every text-generation backend: the offline composer, an
//! OpenAI-compatible chat-completions server, Anthropic's Messages API.
//!
//! Invariants: a provider never panics on a bad answer (it returns
//! [`ProviderError::Permanent`] naming what was wrong); a retryable failure (429,
//! 5xx, a timeout, a cut connection) is retried inside the call a bounded number of
//! times, honouring `Retry-After`, before it is returned as
//! [`ProviderError::Retryable`] for the engine's own retry; a 4xx other than 408/429
//! is permanent. The API key never appears in an error or a log line.

use std::time::Duration;

use futures_util::future::BoxFuture;

/// One generation asked of a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Instructions to the model (the system prompt).
    pub system: String,
    /// The user's request, with the template filled in.
    pub user: String,
    /// Passages of the user's contextual core, best first.
    pub context: Vec<String>,
    /// The most tokens to generate.
    pub max_tokens: u32,
}

/// What a provider produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The text.
    pub text: String,
    /// The model that wrote it, as the provider names it.
    pub model: String,
    /// Tokens read (prompt), as the provider counted them.
    pub input_tokens: u32,
    /// Tokens written.
    pub output_tokens: u32,
}

/// Why a provider produced nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Worth trying again later (429, 5xx, timeout, network), after `retry_after`
    /// when the provider said.
    #[error("{message}")]
    Retryable {
        /// What happened.
        message: String,
        /// The provider's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Will fail the same way again (bad key, bad request, unknown model).
    #[error("{0}")]
    Permanent(String),
}

/// A text-generation backend.
pub trait Provider: Send + Sync {
    /// The name requests use to choose it (`ai_provider`), e.g. `openai`.
    fn name(&self) -> &str;
    /// The model it uses unless told otherwise.
    fn model(&self) -> &str;
    /// Generates text for `prompt`.
    fn generate<'a>(
        &'a self,
        prompt: &'a Prompt,
    ) -> BoxFuture<'a, Result<Generation, ProviderError>>;
}
