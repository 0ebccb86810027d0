//! Text generation: the [`provider::Provider`] trait and the HTTP backends behind it.
//!
//! - [`provider`]: the trait, the prompt, the generation and the error every
//!   backend shares.
//! - [`openai`]: an OpenAI-compatible chat-completions server (OpenAI itself,
//!   Ollama, vLLM, LM Studio).
//! - [`anthropic`]: Anthropic's Messages API.
//!
//! Both HTTP backends go through one private sender that owns the retry policy, so
//! they classify and retry failures identically: whatever a backend returns as
//! [`provider::ProviderError::Retryable`] has already been retried inside the call
//! (honouring `Retry-After`), and no error text ever contains the API key.

pub mod anthropic;
mod http_call;
pub mod openai;
pub mod provider;

pub use http_call::HttpProviderConfig;
