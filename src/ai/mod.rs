//! The AI side of the product: the design's generateContent and runConsultation.
//!
//! - [`provider`]: the one trait every text-generation backend implements.
//! - [`offline`]: the offline composer (no network; the default).
//! - [`templates`]: prompt templates with `{{variables}}`.
//! - [`workers`]: the `content-generator` pool's handlers: a request event in, a
//!   draft stored and the completion published out, once per request event.
//!
//! [`Providers`] picks the backend a request names (`ai_provider`) or the configured
//! default, and prices what it used.

pub mod offline;
pub mod provider;
pub mod templates;
pub mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use provider::{Generation, Prompt, Provider, ProviderError};
pub use templates::{TemplateError, Templates};

use crate::config::{AiSettings, Price};

/// The providers by name, the default, and the price table.
#[derive(Clone)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    default: String,
    prices: BTreeMap<String, Price>,
}

impl Providers {
    /// The offline composer plus every configured HTTP provider.
    pub fn from_settings(ai: &AiSettings) -> Result<Providers, String> {
        let mut by_name: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        by_name.insert("offline".into(), Arc::new(offline::Offline));
        let p = Providers {
            by_name,
            default: ai.default_provider.clone(),
            prices: ai.prices.clone(),
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
}
