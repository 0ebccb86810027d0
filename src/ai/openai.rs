//! The OpenAI-compatible chat-completions provider: OpenAI itself, and the local
//! servers that speak the same API (Ollama, vLLM, LM Studio).
//!
//! One call is one `POST {base_url}/chat/completions` with a system message (the
//! instructions, then the context passages under a heading) and a user message.
//! `Authorization: Bearer` is sent only when a key is configured, since local
//! servers take none. Retries and error classification are those of the shared
//! sender (see [`crate::ai`]).

use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::json;

use super::http_call::{HttpCall, HttpProviderConfig, secret_header, system_with_context};
use super::provider::{Generation, Prompt, Provider, ProviderError};

/// A provider speaking the OpenAI chat-completions API.
#[derive(Debug)]
pub struct OpenAiCompatible {
    call: HttpCall,
}

impl OpenAiCompatible {
    /// The name it answers to unless renamed with [`OpenAiCompatible::with_name`].
    pub const NAME: &'static str = "openai";

    /// A provider for `config.model` at `config.base_url` (e.g.
    /// `https://api.openai.com/v1`, or `http://localhost:11434/v1` for Ollama).
    ///
    /// # Errors
    /// [`ProviderError::Permanent`] when the base URL is not http(s), the timeout is
    /// zero, the key cannot be a header, or the HTTP client cannot be built.
    pub fn new(config: HttpProviderConfig) -> Result<Self, ProviderError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = config.api_key.as_deref() {
            headers.insert(AUTHORIZATION, secret_header(&format!("Bearer {key}"))?);
        }
        let call = HttpCall::new(Self::NAME, config, "chat/completions", headers)?;
        Ok(Self { call })
    }

    /// The same provider under another name, e.g. `ollama` for a local server.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.call.set_name(name.into());
        self
    }
}

impl Provider for OpenAiCompatible {
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
            let answer: ChatCompletion = self.call.post_json(&body).await?;
            answer.into_generation(self.name(), self.model())
        })
    }
}

fn request_body(model: &str, prompt: &Prompt) -> serde_json::Value {
    let system = system_with_context(prompt);
    let mut messages = Vec::with_capacity(2);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": prompt.user}));
    json!({
        "model": model,
        "messages": messages,
        "max_tokens": prompt.max_tokens,
    })
}

/// The parts of a chat completion read; every field optional so that what is
/// missing can be named.
#[derive(Debug, Deserialize)]
struct ChatCompletion {
    #[serde(default)]
    choices: Vec<Choice>,
    model: Option<String>,
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

impl ChatCompletion {
    fn into_generation(self, name: &str, asked_model: &str) -> Result<Generation, ProviderError> {
        let text = self
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message)
            .and_then(|message| message.content)
            .ok_or_else(|| {
                ProviderError::Permanent(format!(
                    "{name}: the answer has no choices[0].message.content"
                ))
            })?;
        let usage = self.usage;
        Ok(Generation {
            text,
            model: self.model.unwrap_or_else(|| asked_model.to_owned()),
            input_tokens: usage.as_ref().and_then(|u| u.prompt_tokens).unwrap_or(0),
            output_tokens: usage
                .as_ref()
                .and_then(|u| u.completion_tokens)
                .unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Generation, ProviderError> {
        serde_json::from_str::<ChatCompletion>(body)
            .unwrap()
            .into_generation("openai", "asked")
    }

    #[test]
    fn body_has_system_then_user() {
        let prompt = Prompt {
            system: "sys".into(),
            user: "hello".into(),
            context: vec!["ctx".into()],
            max_tokens: 42,
        };
        let body = request_body("gpt-x", &prompt);
        assert_eq!(body["model"], "gpt-x");
        assert_eq!(body["max_tokens"], 42);
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(
            body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("[1] ctx")
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "hello"})
        );

        let bare = Prompt {
            system: String::new(),
            context: Vec::new(),
            ..prompt
        };
        let body = request_body("gpt-x", &bare);
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn answers_parse_and_missing_parts_are_named() {
        let full = parse(
            r#"{"model":"gpt-x-2024","choices":[{"message":{"role":"assistant","content":"hi"}}],
                "usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
        )
        .unwrap();
        assert_eq!(
            full,
            Generation {
                text: "hi".into(),
                model: "gpt-x-2024".into(),
                input_tokens: 7,
                output_tokens: 3
            }
        );
        let no_usage = parse(r#"{"choices":[{"message":{"content":"hi"}}]}"#).unwrap();
        assert_eq!((no_usage.input_tokens, no_usage.output_tokens), (0, 0));
        assert_eq!(no_usage.model, "asked");
        for missing in [
            r#"{}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":[{}]}"#,
            r#"{"choices":[{"message":{"content":null}}]}"#,
        ] {
            match parse(missing) {
                Err(ProviderError::Permanent(m)) => {
                    assert!(m.contains("choices[0].message.content"), "{m}")
                }
                other => panic!("{missing}: {other:?}"),
            }
        }
    }
}
