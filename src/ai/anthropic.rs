//! The Anthropic Messages API provider.
//!
//! One call is one `POST {base_url}/v1/messages` with the instructions and the
//! context passages (under a heading) as `system` and the request as the single user
//! message, pinned to `anthropic-version: 2023-06-01` so that the answer's shape
//! does not change under us. The text is every `text` block of `content`, in order;
//! other blocks (thinking, tool use) are skipped. Retries and error classification
//! are those of the shared sender (see [`crate::ai`]).

use futures_util::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use super::http_call::{HttpCall, HttpProviderConfig, secret_header, system_with_context};
use super::provider::{Generation, Prompt, Provider, ProviderError};

/// The API version this provider speaks.
const API_VERSION: &str = "2023-06-01";

/// A provider speaking Anthropic's Messages API.
#[derive(Debug)]
pub struct Anthropic {
    call: HttpCall,
}

impl Anthropic {
    /// The name it answers to.
    pub const NAME: &'static str = "anthropic";

    /// A provider for `config.model` at `config.base_url` (e.g.
    /// `https://api.anthropic.com`).
    ///
    /// # Errors
    /// [`ProviderError::Permanent`] when the base URL is not http(s), the timeout is
    /// zero, the key cannot be a header, or the HTTP client cannot be built.
    pub fn new(config: HttpProviderConfig) -> Result<Self, ProviderError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = config.api_key.as_deref() {
            headers.insert(HeaderName::from_static("x-api-key"), secret_header(key)?);
        }
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        let call = HttpCall::new(Self::NAME, config, "v1/messages", headers)?;
        Ok(Self { call })
    }

    /// The same provider under another name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.call.set_name(name.into());
        self
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        self.call.name()
    }

    fn model(&self) -> &str {
        &self.call.config().model
    }

    fn generate<'a>(
        &'a self,
        prompt: &'a Prompt,
    ) -> BoxFuture<'a, Result<Generation, ProviderError>> {
        Box::pin(async move {
            let body = request_body(self.model(), prompt);
            let answer: Message = self.call.post_json(&body).await?;
            answer.into_generation(self.name(), self.model())
        })
    }
}

fn request_body(model: &str, prompt: &Prompt) -> serde_json::Value {
    let mut body = json!({
        "model": model,
        "max_tokens": prompt.max_tokens,
        "messages": [{"role": "user", "content": prompt.user}],
    });
    let system = system_with_context(prompt);
    // Left out rather than sent as "": absent is the API's own "no instructions".
    if !system.is_empty() {
        body["system"] = json!(system);
    }
    body
}

/// The parts of a Messages answer read; optional so that what is missing can be
/// named.
#[derive(Debug, Deserialize)]
struct Message {
    content: Option<Vec<ContentBlock>>,
    model: Option<String>,
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

impl Message {
    fn into_generation(self, name: &str, asked_model: &str) -> Result<Generation, ProviderError> {
        let blocks = self.content.ok_or_else(|| {
            ProviderError::Permanent(format!("{name}: the answer has no content"))
        })?;
        let texts: Vec<String> = blocks
            .into_iter()
            .filter(|block| block.kind == "text")
            .filter_map(|block| block.text)
            .collect();
        if texts.is_empty() {
            return Err(ProviderError::Permanent(format!(
                "{name}: the answer has no text block in content"
            )));
        }
        let usage = self.usage;
        Ok(Generation {
            text: texts.concat(),
            model: self.model.unwrap_or_else(|| asked_model.to_owned()),
            input_tokens: usage.as_ref().and_then(|u| u.input_tokens).unwrap_or(0),
            output_tokens: usage.as_ref().and_then(|u| u.output_tokens).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Generation, ProviderError> {
        serde_json::from_str::<Message>(body)
            .unwrap()
            .into_generation("anthropic", "asked")
    }

    #[test]
    fn body_carries_system_and_one_user_message() {
        let prompt = Prompt {
            system: "sys".into(),
            user: "hello".into(),
            context: vec!["ctx".into()],
            max_tokens: 42,
        };
        let body = request_body("claude-x", &prompt);
        assert_eq!(body["model"], "claude-x");
        assert_eq!(body["max_tokens"], 42);
        assert!(body["system"].as_str().unwrap().starts_with("sys"));
        assert!(body["system"].as_str().unwrap().contains("[1] ctx"));
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": "hello"}])
        );
        let bare = Prompt {
            system: String::new(),
            context: Vec::new(),
            ..prompt
        };
        assert!(request_body("claude-x", &bare).get("system").is_none());
    }

    #[test]
    fn text_blocks_are_joined_and_others_skipped() {
        let generation = parse(
            r#"{"model":"claude-x-1","content":[
                {"type":"thinking","thinking":"hmm"},
                {"type":"text","text":"Hello, "},
                {"type":"tool_use","id":"t","name":"n","input":{}},
                {"type":"text","text":"world"}],
               "usage":{"input_tokens":11,"output_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!(
            generation,
            Generation {
                text: "Hello, world".into(),
                model: "claude-x-1".into(),
                input_tokens: 11,
                output_tokens: 4
            }
        );
        for (body, missing) in [
            (r#"{}"#, "no content"),
            (r#"{"content":[]}"#, "no text block"),
            (r#"{"content":[{"type":"tool_use"}]}"#, "no text block"),
        ] {
            match parse(body) {
                Err(ProviderError::Permanent(m)) => assert!(m.contains(missing), "{m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
