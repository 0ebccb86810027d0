//! Embeddings: turning passages of text into vectors whose closeness (cosine)
//! stands for how related the passages are, for the design's contextual core
//! (finding a user's passages relevant to a request). Pure: no Redis, no database,
//! no HTTP handlers; the callers store and search the vectors.
//!
//! - [`chunk`](mod@chunk): splits a document into overlapping passages of bounded size.
//! - [`provider`]: the one trait every embeddings backend implements.
//! - [`offline`]: hashed word and character n-grams, in-process (the default;
//!   lexical similarity only, see its documentation).
//! - [`openai`]: any OpenAI-compatible `/embeddings` server (OpenAI, Ollama, vLLM),
//!   through the text providers' sender, so retries honour `Retry-After` and no
//!   error shows the key.
//!
//! [`Embedders`] picks the backend a caller names or the configured default, and
//! prices what it used.
//!
//! Invariant for callers: a vector is only comparable with vectors of the same
//! embedder *model* (and dimension count); store the model beside each vector and
//! compare within one model only. [`cosine`] is 0 for vectors it cannot compare
//! rather than NaN or a panic.

pub mod cache_job;
pub mod chunk;
pub mod offline;
pub mod openai;
pub mod provider;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use chunk::{Chunk, chunk};
pub use offline::HashedNgrams;
pub use openai::OpenAiEmbeddings;
pub use provider::{EmbedError, Embedded, Embedder};

use crate::ai::HttpProviderConfig;
use crate::config::EmbeddingsSettings;

/// The cosine of the angle between `a` and `b`, in `[-1, 1]`.
///
/// 0 when the lengths differ, when either is empty or all zeros, or when a number
/// is not finite: a comparison that means nothing ranks below any real match
/// instead of poisoning a sort with NaN.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    // Sums in f64: 384 to 3072 products of f32 lose digits otherwise.
    let (mut dot, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    let value = dot / (aa.sqrt() * bb.sqrt());
    if value.is_finite() {
        value.clamp(-1.0, 1.0) as f32
    } else {
        0.0
    }
}

/// The embedders by name, the default, and the price table.
#[derive(Clone)]
pub struct Embedders {
    by_name: BTreeMap<String, Arc<dyn Embedder>>,
    default: String,
    prices: BTreeMap<String, f64>,
}

impl std::fmt::Debug for Embedders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedders")
            .field("names", &self.names())
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl Embedders {
    /// The offline embedder plus every configured HTTP one (its key read from the
    /// environment variable it names).
    ///
    /// # Errors
    /// A message naming the setting when a provider is misconfigured or the default
    /// names no embedder.
    pub fn from_settings(settings: &EmbeddingsSettings) -> Result<Embedders, String> {
        Self::from_settings_with(settings, |var| std::env::var(var).ok())
    }

    /// As [`Embedders::from_settings`], reading keys through `key`.
    ///
    /// # Errors
    /// As [`Embedders::from_settings`].
    pub fn from_settings_with(
        settings: &EmbeddingsSettings,
        key: impl Fn(&str) -> Option<String>,
    ) -> Result<Embedders, String> {
        let mut by_name: BTreeMap<String, Arc<dyn Embedder>> = BTreeMap::new();
        by_name.insert(HashedNgrams::NAME.into(), Arc::new(HashedNgrams::default()));
        for (name, p) in &settings.providers {
            let at = format!("embeddings.providers.{name}");
            if name == HashedNgrams::NAME {
                return Err(format!("{at}: the name is taken by the offline embedder"));
            }
            if p.kind != "openai" {
                return Err(format!(
                    "{at}.kind: {:?} is not a kind; use openai (any OpenAI-compatible /embeddings server)",
                    p.kind
                ));
            }
            if p.max_batch == 0 {
                return Err(format!("{at}.max_batch: must be at least 1"));
            }
            let mut config = HttpProviderConfig::new(p.base_url.clone(), p.model.clone());
            config.timeout_ms = p.timeout_ms;
            config.max_retries = p.max_retries;
            if let Some(var) = p.api_key_env.as_deref() {
                match key(var).filter(|k| !k.is_empty()) {
                    Some(k) => config = config.with_api_key(k),
                    None => {
                        // Listed, but unusable here: refuse its calls at once with the
                        // fix, instead of calling the API without a key.
                        by_name.insert(
                            name.clone(),
                            Arc::new(Unconfigured {
                                name: name.clone(),
                                model: p.model.clone(),
                                dimensions: p.dimensions.unwrap_or(0),
                                why: format!(
                                    "no API key: set {var} for embeddings provider {name:?}"
                                ),
                            }),
                        );
                        continue;
                    }
                }
            }
            let embedder = OpenAiEmbeddings::new(config)
                .map_err(|e| format!("{at}: {e}"))?
                .with_name(name)
                .with_max_batch(p.max_batch)
                .with_dimensions(p.dimensions.unwrap_or(0));
            by_name.insert(name.clone(), Arc::new(embedder));
        }
        let embedders = Embedders {
            by_name,
            default: settings.default_model.clone(),
            prices: settings.prices.clone(),
        };
        embedders
            .choose(None)
            .map_err(|e| format!("embeddings.default_model: {e}"))?;
        Ok(embedders)
    }

    /// Adds (or replaces) an embedder under its own name.
    #[must_use]
    pub fn with(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.by_name.insert(embedder.name().to_owned(), embedder);
        self
    }

    /// Every embedder's name.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// The embedder `preferred` names: `None`, empty or `default` mean the default
    /// (`default_model`). A name is an embedder's name (`offline`, `openai`) or,
    /// failing that, the model of exactly one embedder (`hashed-ngrams-v1`,
    /// `text-embedding-3-small`), so that a stored vector's model finds the embedder
    /// that can embed a query comparable with it.
    ///
    /// # Errors
    /// A message naming what was asked and what is known when nothing, or more than
    /// one embedder, matches.
    pub fn choose(&self, preferred: Option<&str>) -> Result<Arc<dyn Embedder>, String> {
        let wanted = match preferred.map(str::trim) {
            None | Some("" | "default") => self.default.as_str(),
            Some(other) => other,
        };
        if let Some(e) = self.by_name.get(wanted) {
            return Ok(e.clone());
        }
        let serving: Vec<&Arc<dyn Embedder>> = self
            .by_name
            .values()
            .filter(|e| e.model() == wanted)
            .collect();
        match serving.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "embedder {wanted:?} is not configured; known: {}",
                self.names().join(", ")
            )),
            several => Err(format!(
                "model {wanted:?} is served by several embedders ({}); name one",
                several
                    .iter()
                    .map(|e| e.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// USD for `tokens` input tokens of `model`: the price of the longest key the
    /// model name starts with (`text-embedding-3-small` matches a dated variant);
    /// 0 for an unlisted model.
    pub fn cost(&self, model: &str, tokens: u64) -> f64 {
        self.prices
            .iter()
            .filter(|(k, _)| model.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map_or(0.0, |(_, per_million)| {
                tokens as f64 * per_million / 1_000_000.0
            })
    }
}

/// A configured embedder that cannot work in this process (its key is missing).
struct Unconfigured {
    name: String,
    model: String,
    dimensions: u32,
    why: String,
}

impl Embedder for Unconfigured {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> u32 {
        self.dimensions
    }

    fn embed<'a>(&'a self, _: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move { Err(EmbedError::Permanent(self.why.clone())) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::Settings;

    fn settings() -> EmbeddingsSettings {
        Settings::load(None, Vec::new()).unwrap().embeddings
    }

    #[test]
    fn cosine_is_bounded_and_zero_when_meaningless() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-3.0, 0.0]) + 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 5.0]).abs() < 1e-6);
        let c = cosine(&[1.0, 1.0], &[1.0, 0.0]);
        assert!((c - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6, "{c}");
        assert_eq!(cosine(&[], &[]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[f32::NAN, 1.0], &[1.0, 1.0]), 0.0);
        assert_eq!(cosine(&[f32::INFINITY, 1.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn the_default_is_offline_and_names_or_models_choose() {
        let e = Embedders::from_settings_with(&settings(), |_| Some("k".into())).unwrap();
        assert_eq!(e.names(), ["offline", "openai"]);
        for default in [None, Some(""), Some(" default ")] {
            assert_eq!(e.choose(default).unwrap().name(), "offline");
        }
        assert_eq!(
            e.choose(Some("hashed-ngrams-v1")).unwrap().name(),
            "offline"
        );
        let openai = e.choose(Some("openai")).unwrap();
        assert_eq!(openai.model(), "text-embedding-3-small");
        assert_eq!(openai.dimensions(), 0);
        assert_eq!(
            e.choose(Some("text-embedding-3-small")).unwrap().name(),
            "openai"
        );
        let unknown = e.choose(Some("nope")).err().unwrap();
        assert!(
            unknown.contains("\"nope\"") && unknown.contains("offline, openai"),
            "{unknown}"
        );
    }

    #[test]
    fn a_model_served_twice_must_be_chosen_by_name() {
        let mut s = settings();
        let mut other = s.providers["openai"].clone();
        other.base_url = "http://localhost:8000/v1".into();
        other.api_key_env = None;
        s.providers.insert("mirror".into(), other);
        let e = Embedders::from_settings_with(&s, |_| Some("k".into())).unwrap();
        let m = e.choose(Some("text-embedding-3-small")).err().unwrap();
        assert!(m.contains("mirror, openai"), "{m}");
        assert_eq!(e.choose(Some("mirror")).unwrap().name(), "mirror");
    }

    #[actix_rt::test]
    async fn a_provider_without_its_key_refuses_at_once_with_the_fix() {
        let e = Embedders::from_settings_with(&settings(), |_| None).unwrap();
        let openai = e.choose(Some("openai")).unwrap();
        assert_eq!(openai.model(), "text-embedding-3-small");
        let err = openai.embed(&["hi".to_owned()]).await.unwrap_err();
        assert_eq!(
            err,
            EmbedError::Permanent(
                "no API key: set OPENAI_API_KEY for embeddings provider \"openai\"".into()
            )
        );
        let err = openai
            .embed_with_usage(&["hi".to_owned()])
            .await
            .unwrap_err();
        assert!(matches!(err, EmbedError::Permanent(_)));
    }

    #[test]
    fn bad_settings_are_refused_naming_the_key() {
        let mut s = settings();
        s.default_model = "missing".into();
        let m = Embedders::from_settings_with(&s, |_| None).unwrap_err();
        assert!(m.starts_with("embeddings.default_model: "), "{m}");

        let mut s = settings();
        s.providers.get_mut("openai").unwrap().kind = "anthropic".into();
        let m = Embedders::from_settings_with(&s, |_| None).unwrap_err();
        assert!(m.starts_with("embeddings.providers.openai.kind"), "{m}");

        let mut s = settings();
        s.providers.get_mut("openai").unwrap().max_batch = 0;
        let m = Embedders::from_settings_with(&s, |_| None).unwrap_err();
        assert!(m.contains("max_batch"), "{m}");

        let mut s = settings();
        s.providers.get_mut("openai").unwrap().base_url = "ftp://x".into();
        let m = Embedders::from_settings_with(&s, |_| Some("k".into())).unwrap_err();
        assert!(m.starts_with("embeddings.providers.openai: "), "{m}");

        let mut s = settings();
        let taken = s.providers["openai"].clone();
        s.providers.insert("offline".into(), taken);
        let m = Embedders::from_settings_with(&s, |_| None).unwrap_err();
        assert!(m.contains("taken"), "{m}");
    }

    #[test]
    fn cost_takes_the_longest_matching_price() {
        let e = Embedders::from_settings_with(&settings(), |_| None).unwrap();
        let c = e.cost("text-embedding-3-small", 1_000_000);
        assert!((c - 0.02).abs() < 1e-12, "{c}");
        let c = e.cost("text-embedding-3-large-2025", 2_000_000);
        assert!((c - 0.26).abs() < 1e-12, "{c}");
        assert_eq!(e.cost("hashed-ngrams-v1", 1_000_000), 0.0);
        assert_eq!(e.cost("unknown", 1_000_000), 0.0);
    }
}
