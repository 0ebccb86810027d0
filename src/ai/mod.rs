//! The AI side of the product: the design's generateContent and runConsultation.
//!
//! - [`provider`]: the one trait every text-generation backend implements.
//! - [`offline`]: the offline composer (no network; the default).
//! - [`openai`]: an OpenAI-compatible chat-completions server (OpenAI itself,
//!   Ollama, vLLM, LM Studio); [`anthropic`]: Anthropic's Messages API. Both go
//!   through one crate-private sender that owns the retry policy: whatever they
//!   return as [`ProviderError::Retryable`] was already retried inside the call
//!   (honouring `Retry-After`), and no error text contains the API key. The
//!   embeddings providers ([`crate::embeddings`]) use the same sender.
//! - [`templates`]: prompt templates with `{{variables}}`.
//! - [`workers`]: the `content-generator` pool's handlers: a request event in, a
//!   draft stored and the completion published out, once per request event.
//!
//! [`Providers`] picks the backend a request names (`ai_provider`) or the configured
//! default (or, for content requests naming none, the best by stored benchmarks:
//! [`choice`]), and prices what it used.

pub mod anthropic;
pub mod benchmarks;
pub mod choice;
pub(crate) mod http_call;
pub mod offline;
pub mod openai;
pub mod provider;
pub mod templates;
pub mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use http_call::HttpProviderConfig;
pub use provider::{Generation, Prompt, Provider, ProviderError};
pub use templates::{TemplateError, Templates};

use crate::config::{AiSettings, Price};

/// The providers by name, the default, and the price table.
#[derive(Clone)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    default: String,
    prices: BTreeMap<String, Price>,
    /// Listed but unusable here (no key): never chosen by benchmarks.
    unusable: std::collections::BTreeSet<String>,
    /// Whether, and how, requests naming none are routed by benchmarks.
    choice: choice::ChoiceSettings,
}

impl Providers {
    /// The offline composer plus every configured HTTP provider (its key read from
    /// the environment variable it names; unset means no key).
    pub fn from_settings(ai: &AiSettings) -> Result<Providers, String> {
        Self::from_settings_with(ai, |var| std::env::var(var).ok())
    }

    /// As [`Providers::from_settings`], reading keys through `key`.
    pub fn from_settings_with(
        ai: &AiSettings,
        key: impl Fn(&str) -> Option<String>,
    ) -> Result<Providers, String> {
        let mut by_name: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let mut unusable = std::collections::BTreeSet::new();
        by_name.insert("offline".into(), Arc::new(offline::Offline));
        for (name, p) in &ai.providers {
            if name == "offline" {
                return Err(
                    "ai.providers.offline: the name is taken by the offline composer".into(),
                );
            }
            let mut config = HttpProviderConfig::new(p.base_url.clone(), p.model.clone());
            config.timeout_ms = p.timeout_ms;
            config.max_retries = p.max_retries;
            if let Some(var) = p.api_key_env.as_deref() {
                match key(var).filter(|k| !k.is_empty()) {
                    Some(k) => config = config.with_api_key(k),
                    None => {
                        // Listed, but unusable here: refuse its requests at once with
                        // the fix, instead of calling the API without a key.
                        unusable.insert(name.clone());
                        by_name.insert(
                            name.clone(),
                            Arc::new(Unconfigured {
                                name: name.clone(),
                                model: p.model.clone(),
                                why: format!("no API key: set {var} for provider {name:?}"),
                            }),
                        );
                        continue;
                    }
                }
            }
            let provider: Arc<dyn Provider> = match p.kind.as_str() {
                "openai" => Arc::new(
                    openai::OpenAiCompatible::new(config)
                        .map_err(|e| format!("ai.providers.{name}: {e}"))?
                        .with_name(name),
                ),
                "anthropic" => Arc::new(
                    anthropic::Anthropic::new(config)
                        .map_err(|e| format!("ai.providers.{name}: {e}"))?
                        .with_name(name),
                ),
                other => {
                    return Err(format!(
                        "ai.providers.{name}.kind: {other:?} is not a kind; use openai or anthropic"
                    ));
                }
            };
            by_name.insert(name.clone(), provider);
        }
        let p = Providers {
            by_name,
            default: ai.default_provider.clone(),
            prices: ai.prices.clone(),
            unusable,
            choice: choice::ChoiceSettings {
                enabled: ai.choose_by_benchmarks,
                max_age_ms: i64::try_from(ai.benchmark_max_age_hours.saturating_mul(3_600_000))
                    .unwrap_or(i64::MAX),
            },
        };
        if !p.by_name.contains_key(&p.default) {
            return Err(format!(
                "ai.default_provider {:?} is not a provider; known: {}",
                p.default,
                p.names().join(", ")
            ));
        }
        Ok(p)
    }

    /// Adds (or replaces) a provider under its own name.
    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.unusable.remove(provider.name());
        self.by_name.insert(provider.name().to_string(), provider);
        self
    }

    /// Every provider's name.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// The provider `requested` names; empty or `default` means the default.
    pub fn choose(&self, requested: &str) -> Result<Arc<dyn Provider>, String> {
        let name = match requested.trim() {
            "" | "default" => self.default.as_str(),
            other => other,
        };
        self.by_name.get(name).cloned().ok_or_else(|| {
            format!(
                "ai_provider {name:?} is not configured; known: {}",
                self.names().join(", ")
            )
        })
    }

    /// USD for `input` and `output` tokens of `model`: the longest price key the
    /// model name starts with; 0 for an unlisted model.
    pub fn cost(&self, model: &str, input: u32, output: u32) -> f64 {
        let price = self
            .prices
            .iter()
            .filter(|(k, _)| model.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| *p);
        price.map_or(0.0, |p| {
            (f64::from(input) * p.input + f64::from(output) * p.output) / 1_000_000.0
        })
    }
}

/// A configured provider that cannot work in this process (its key is missing).
struct Unconfigured {
    name: String,
    model: String,
    why: String,
}

impl Provider for Unconfigured {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn generate<'a>(
        &'a self,
        _: &'a Prompt,
    ) -> futures_util::future::BoxFuture<'a, Result<Generation, ProviderError>> {
        Box::pin(async move { Err(ProviderError::Permanent(self.why.clone())) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_is_chosen_unless_a_known_provider_is_named_and_prices_match_by_prefix() {
        let s = crate::config::Settings::load(None, Vec::new()).unwrap();
        let p = Providers::from_settings(&s.ai).unwrap();
        assert_eq!(p.choose("").unwrap().name(), "offline");
        assert_eq!(p.choose("default").unwrap().name(), "offline");
        assert!(p.choose("nope").err().unwrap().contains("nope"));
        // gpt-4o-mini-2024-07-18 takes gpt-4o-mini's price, not gpt-4o's.
        let c = p.cost("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000);
        assert!((c - 0.75).abs() < 1e-9, "{c}");
        assert_eq!(p.cost("unknown-model", 1000, 1000), 0.0);
    }

    #[actix_rt::test]
    async fn a_provider_without_its_key_refuses_with_the_fix_and_one_with_it_is_real() {
        let s = crate::config::Settings::load(None, Vec::new()).unwrap();
        let p = Providers::from_settings_with(&s.ai, |_| None).unwrap();
        let prompt = Prompt {
            system: String::new(),
            user: "hi".into(),
            context: Vec::new(),
            max_tokens: 5,
        };
        let e = p
            .choose("openai")
            .unwrap()
            .generate(&prompt)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ProviderError::Permanent(
                "no API key: set OPENAI_API_KEY for provider \"openai\"".into()
            )
        );
        let p = Providers::from_settings_with(&s.ai, |_| Some("k".into())).unwrap();
        assert_eq!(p.choose("anthropic").unwrap().model(), "claude-sonnet-4-5");
    }
}
