//! The OpenAI-compatible embeddings provider: `POST {base_url}/embeddings` on
//! OpenAI itself or on a local server speaking the same API (Ollama at
//! `http://localhost:11434/v1`, vLLM, LM Studio).
//!
//! One call to [`Embedder::embed`] sends the texts in batches of at most
//! `max_batch` inputs, one after the other (not in parallel: a provider that rate
//! limits would only answer 429 sooner), each as `{"model": ..., "input": [...]}`.
//! The answer's `data[].embedding` are put back in input order by `data[].index`
//! (servers need not answer in order; an answer without indices is taken in order),
//! and `usage.prompt_tokens` is summed over the batches.
//!
//! Invariants:
//! - Retries, error classification and key scrubbing are those of the text
//!   providers' sender (`ai::http_call`): 408/429/5xx, timeouts and cut
//!   connections are retried there, honouring `Retry-After`; any other 4xx is
//!   permanent; `Authorization: Bearer` is sent only when a key is configured, and
//!   the key appears in no error.
//! - An answer that does not hold exactly one vector per input, each index once,
//!   all of the same non-zero length (the configured or first-learned
//!   `dimensions`), is permanent: asking again would get the same answer, and a
//!   wrong vector stored is worse than none.
//! - `dimensions`, when configured, is checked and not sent: the `dimensions`
//!   request field shortens vectors on OpenAI's v3 models only, and other servers
//!   refuse it. Pick the model that makes the size you want.

use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::json;

use super::provider::{EmbedError, Embedded, Embedder};
use crate::ai::HttpProviderConfig;
use crate::ai::http_call::{HttpCall, secret_header};

/// An embedder speaking the OpenAI embeddings API.
#[derive(Debug)]
pub struct OpenAiEmbeddings {
    call: HttpCall,
    max_batch: usize,
    /// The vector length: configured, or learned from the first answer; 0 while
    /// unknown.
    dimensions: AtomicU32,
}

impl OpenAiEmbeddings {
    /// The name it answers to unless renamed with [`OpenAiEmbeddings::with_name`].
    pub const NAME: &'static str = "openai";
    /// The most inputs sent in one request unless told otherwise.
    pub const DEFAULT_MAX_BATCH: usize = 64;

    /// An embedder for `config.model` at `config.base_url` (e.g.
    /// `https://api.openai.com/v1`), sending batches of
    /// [`OpenAiEmbeddings::DEFAULT_MAX_BATCH`] and learning the dimensions from its
    /// first answer.
    ///
    /// # Errors
    /// [`EmbedError::Permanent`] when the base URL is not http(s), the timeout is
    /// zero, the key cannot be a header, or the HTTP client cannot be built.
    pub fn new(config: HttpProviderConfig) -> Result<Self, EmbedError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = config.api_key.as_deref() {
            headers.insert(AUTHORIZATION, secret_header(&format!("Bearer {key}"))?);
        }
        let call = HttpCall::new(Self::NAME, config, "embeddings", headers)?;
        Ok(Self {
            call,
            max_batch: Self::DEFAULT_MAX_BATCH,
            dimensions: AtomicU32::new(0),
        })
    }

    /// The same embedder under another name, e.g. `ollama` for a local server.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.call.set_name(name.into());
        self
    }

    /// The same embedder sending at most `max_batch` inputs per request (0 is taken
    /// as 1).
    #[must_use]
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The same embedder expecting vectors of `dimensions` numbers (0: learn them
    /// from the first answer).
    #[must_use]
    pub fn with_dimensions(self, dimensions: u32) -> Self {
        self.dimensions.store(dimensions, Ordering::Relaxed);
        self
    }

    /// The most inputs it sends in one request.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Embeds every text, batch by batch, summing the tokens counted.
    async fn embed_all(&self, texts: &[String]) -> Result<Embedded, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut tokens = 0u64;
        for batch in texts.chunks(self.max_batch) {
            let body = json!({"model": self.model(), "input": batch});
            let answer: EmbeddingsAnswer = self.call.post_json(&body).await?;
            tokens += answer.usage.and_then(|u| u.prompt_tokens).unwrap_or(0);
            vectors.extend(self.in_input_order(answer.data, batch.len())?);
        }
        Ok(Embedded { vectors, tokens })
    }

    /// The vectors of one answer by `index`, checked as the module says.
    fn in_input_order(
        &self,
        data: Vec<EmbeddingItem>,
        asked: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let name = self.name();
        let bad = |what: String| EmbedError::Permanent(format!("{name}: {what}"));
        if data.len() != asked {
            return Err(bad(format!(
                "asked for {asked} embeddings, the answer has {}",
                data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; asked];
        for (position, item) in data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            let slot = slots.get_mut(index).ok_or_else(|| {
                bad(format!(
                    "the answer has index {index} for a batch of {asked}"
                ))
            })?;
            if slot.is_some() {
                return Err(bad(format!("the answer has index {index} twice")));
            }
            let length = u32::try_from(item.embedding.len()).unwrap_or(u32::MAX);
            if length == 0 {
                return Err(bad(format!("the embedding at index {index} is empty")));
            }
            // The first answer fixes the dimensions when they were not configured;
            // after that every vector must have them.
            let expected = match self.dimensions.compare_exchange(
                0,
                length,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => length,
                Err(known) => known,
            };
            if length != expected {
                return Err(bad(format!(
                    "the embedding at index {index} has {length} dimensions, expected {expected}"
                )));
            }
            *slot = Some(item.embedding);
        }
        // Every slot is filled: `asked` items, each in range, none twice.
        Ok(slots.into_iter().flatten().collect())
    }
}

impl Embedder for OpenAiEmbeddings {
    fn name(&self) -> &str {
        self.call.name()
    }

    fn model(&self) -> &str {
        &self.call.config().model
    }

    fn dimensions(&self) -> u32 {
        self.dimensions.load(Ordering::Relaxed)
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move { Ok(self.embed_all(texts).await?.vectors) })
    }

    fn embed_with_usage<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Embedded, EmbedError>> {
        Box::pin(self.embed_all(texts))
    }
}

/// The parts of an embeddings answer read.
#[derive(Debug, Deserialize)]
struct EmbeddingsAnswer {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn embedder() -> OpenAiEmbeddings {
        OpenAiEmbeddings::new(HttpProviderConfig::new("http://127.0.0.1:9/v1", "m")).unwrap()
    }

    fn items(json: &str) -> Vec<EmbeddingItem> {
        serde_json::from_str::<EmbeddingsAnswer>(json).unwrap().data
    }

    fn permanent(result: Result<Vec<Vec<f32>>, EmbedError>) -> String {
        match result {
            Err(EmbedError::Permanent(m)) => m,
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[test]
    fn answers_are_put_in_input_order_and_fix_the_dimensions() {
        let e = embedder();
        assert_eq!(e.dimensions(), 0);
        let data = items(
            r#"{"data":[{"index":1,"embedding":[2.0,2.5]},{"index":0,"embedding":[1.0,1.5]}]}"#,
        );
        assert_eq!(
            e.in_input_order(data, 2).unwrap(),
            vec![vec![1.0, 1.5], vec![2.0, 2.5]]
        );
        assert_eq!(e.dimensions(), 2);
        // Without indices, the order of the answer is the order of the inputs.
        let data = items(r#"{"data":[{"embedding":[3.0,0.0]},{"embedding":[4.0,0.0]}]}"#);
        assert_eq!(
            e.in_input_order(data, 2).unwrap(),
            vec![vec![3.0, 0.0], vec![4.0, 0.0]]
        );
    }

    #[test]
    fn answers_that_do_not_fit_the_request_are_permanent() {
        let e = embedder().with_dimensions(2);
        let cases = [
            (r#"{"data":[{"index":0,"embedding":[1,2]}]}"#, "asked for 2"),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]}"#,
                "index 0 twice",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":5,"embedding":[1,2]}]}"#,
                "index 5",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,2,3]}]}"#,
                "3 dimensions, expected 2",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[]},{"index":1,"embedding":[1,2]}]}"#,
                "empty",
            ),
        ];
        for (json, expected) in cases {
            let message = permanent(e.in_input_order(items(json), 2));
            assert!(message.contains(expected), "{json}: {message}");
            assert!(message.starts_with("openai: "), "{message}");
        }
    }

    #[test]
    fn batch_size_and_name_can_be_set() {
        let e = embedder().with_max_batch(0).with_name("ollama");
        assert_eq!(e.max_batch(), 1);
        assert_eq!(e.name(), "ollama");
        assert_eq!(e.model(), "m");
        assert_eq!(embedder().max_batch(), 64);
    }
}
