//! The offline embedder: feature hashing of words and character trigrams, computed
//! in-process with no network, no model file and no download.
//!
//! What it is: a *lexical* similarity measure. A text becomes counts of its
//! lowercase words (UAX #29 words from `unicode-segmentation`), of its pairs of
//! consecutive words, and of the character 3-grams of each word (with a space
//! marking the word's start and end, so `plan` and `planning` share `" pl"`,
//! `pla`, `lan`). Each feature is hashed with xxh3 (fixed seed) to one of
//! `dimensions` slots and a sign; its weight is `1 + ln(count)` (so a repeated word
//! counts, but ten repeats do not count ten times) times a weight per kind; the
//! vector is then scaled to length 1. Two texts are near when they share words,
//! word pairs or word pieces, in any language the segmenter splits into words.
//!
//! What it is not: a semantic model. Synonyms and paraphrases with other words do
//! not match (`car` and `automobile` are as far apart as `car` and `banana`), word
//! order beyond adjacent pairs is ignored, there is no notion of importance across
//! a corpus (common words weigh like rare ones), and hashing collisions add a little
//! noise. It is the default so that search works on a machine with no API key; for
//! meaning, configure an HTTP embedder.
//!
//! Invariants:
//! - The vector of a text depends on the text and the dimension count only: the
//!   hash is xxh3 with a fixed seed (std's `DefaultHasher` may change between Rust
//!   releases), and features are summed in a fixed order (a `BTreeMap`, not a
//!   `HashMap`, whose order would change the float rounding run to run). A test pins
//!   the output, so a change to the scheme must come with a new model name
//!   (`hashed-ngrams-v2`), since vectors of two schemes cannot be compared.
//! - Every vector has length 1, or is all zeros for a text with no word (never NaN).

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use futures_util::future::BoxFuture;
use unicode_segmentation::UnicodeSegmentation;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::provider::{EmbedError, Embedder};

/// The seed of every hash. Changing it changes every vector (see the module
/// invariants).
const SEED: u64 = 0x5354_5241_5445_4749; // "STRATEGI"

/// Weight of a word.
const WORD_WEIGHT: f32 = 1.0;
/// Weight of a pair of consecutive words: rarer than words, and a shared pair says
/// more than two shared words apart.
const BIGRAM_WEIGHT: f32 = 0.75;
/// Weight of a character trigram: a word has about as many trigrams as letters, so
/// each weighs less, or spelling would drown out the words.
const TRIGRAM_WEIGHT: f32 = 0.3;

/// Feature kinds, hashed as a prefix byte so that the word `abc` and the trigram
/// `abc` land in unrelated slots.
const WORD: u8 = b'w';
const BIGRAM: u8 = b'b';
const TRIGRAM: u8 = b't';

/// The offline embedder (name `offline`, model `hashed-ngrams-v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashedNgrams {
    dimensions: NonZeroU32,
}

impl HashedNgrams {
    /// Its name in the registry.
    pub const NAME: &'static str = "offline";
    /// Its model name; names the hashing scheme, see the module invariants.
    pub const MODEL: &'static str = "hashed-ngrams-v1";
    /// The dimension count unless told otherwise.
    pub const DEFAULT_DIMENSIONS: u32 = 384;

    /// An embedder making vectors of `dimensions` numbers.
    pub fn new(dimensions: NonZeroU32) -> Self {
        Self { dimensions }
    }

    /// The vector of one text.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let dims = self.dimensions.get();
        let mut counts: BTreeMap<(u8, u64), (f32, u32)> = BTreeMap::new();
        let mut add = |kind: u8, feature: &str, weight: f32| {
            let mut key = Vec::with_capacity(feature.len() + 1);
            key.push(kind);
            key.extend_from_slice(feature.as_bytes());
            let hash = xxh3_64_with_seed(&key, SEED);
            counts.entry((kind, hash)).or_insert((weight, 0)).1 += 1;
        };

        let lower = text.to_lowercase();
        let words: Vec<&str> = lower.unicode_words().collect();
        for word in &words {
            add(WORD, word, WORD_WEIGHT);
            let padded: Vec<char> = std::iter::once(' ')
                .chain(word.chars())
                .chain(std::iter::once(' '))
                .collect();
            for gram in padded.windows(3) {
                add(TRIGRAM, &gram.iter().collect::<String>(), TRIGRAM_WEIGHT);
            }
        }
        for pair in words.windows(2) {
            add(BIGRAM, &format!("{} {}", pair[0], pair[1]), BIGRAM_WEIGHT);
        }

        let mut vector = vec![0.0f32; dims as usize];
        for ((_, hash), (weight, count)) in counts {
            // Low bits pick the slot; the top bit, independent of them, the sign, so
            // that colliding features cancel out on average instead of piling up.
            let slot = (hash % u64::from(dims)) as usize;
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            vector[slot] += sign * weight * (1.0 + (count as f32).ln());
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        vector
    }
}

impl Default for HashedNgrams {
    fn default() -> Self {
        Self {
            dimensions: NonZeroU32::new(Self::DEFAULT_DIMENSIONS).unwrap_or(NonZeroU32::MIN),
        }
    }
}

impl Embedder for HashedNgrams {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn model(&self) -> &str {
        Self::MODEL
    }

    fn dimensions(&self) -> u32 {
        self.dimensions.get()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move { Ok(texts.iter().map(|t| self.embed_one(t)).collect()) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::embeddings::cosine;

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn vectors_are_deterministic_and_of_unit_length() {
        let e = HashedNgrams::default();
        let text = "Quarterly marketing plan: launch the product in Berlin.";
        let a = e.embed_one(text);
        assert_eq!(a.len(), 384);
        assert_eq!(a, e.embed_one(text));
        assert_eq!(a, HashedNgrams::default().embed_one(text));
        assert!((norm(&a) - 1.0).abs() < 1e-5, "{}", norm(&a));
        for text in ["x", "Ünïcödé wörds", "数据 分析", "a a a a a a"] {
            let v = e.embed_one(text);
            assert!((norm(&v) - 1.0).abs() < 1e-5, "{text}: {}", norm(&v));
        }
    }

    #[test]
    fn the_scheme_is_pinned() {
        // If this fails, the vectors changed: stored vectors of `hashed-ngrams-v1`
        // no longer compare with new ones. Bump MODEL instead of updating the
        // numbers.
        let v = HashedNgrams::new(NonZeroU32::new(16).unwrap()).embed_one("Hello world");
        let rounded: Vec<i32> = v.iter().map(|x| (x * 1000.0).round() as i32).collect();
        assert_eq!(rounded, PINNED);
    }

    const PINNED: [i32; 16] = [
        396, 216, -216, 216, 216, 0, 0, 719, 0, 216, 0, 0, 216, -216, 0, 0,
    ];

    #[test]
    fn texts_sharing_words_are_nearer_than_unrelated_ones() {
        let e = HashedNgrams::default();
        let text = e.embed_one("Our marketing strategy targets small businesses in Europe.");
        let paraphrase = e.embed_one("A marketing strategy for small businesses across Europe.");
        let unrelated = e.embed_one("The recipe needs two eggs, flour and a pinch of salt.");
        let near = cosine(&text, &paraphrase);
        let far = cosine(&text, &unrelated);
        assert!(near > far + 0.2, "near {near}, far {far}");
        assert!((cosine(&text, &text) - 1.0).abs() < 1e-5);
        // Word pieces count too: inflected forms are nearer than unrelated words.
        let plan = e.embed_one("planning");
        assert!(cosine(&plan, &e.embed_one("planned")) > cosine(&plan, &e.embed_one("eggs")));
    }

    #[test]
    fn a_text_without_words_gives_zeros_not_nan() {
        let e = HashedNgrams::default();
        for text in ["", "   ", "!?.,;", "\n\n"] {
            let v = e.embed_one(text);
            assert_eq!(v.len(), 384);
            assert!(v.iter().all(|x| *x == 0.0), "{text:?}");
            let other = e.embed_one("something");
            assert_eq!(cosine(&v, &other), 0.0);
            assert_eq!(cosine(&v, &v), 0.0);
        }
    }

    #[actix_rt::test]
    async fn the_trait_embeds_each_text_in_order() {
        let e = HashedNgrams::default();
        assert_eq!(e.name(), "offline");
        assert_eq!(e.model(), "hashed-ngrams-v1");
        assert_eq!(e.dimensions(), 384);
        let texts = vec!["one".to_owned(), String::new(), "two".to_owned()];
        let vectors = e.embed(&texts).await.unwrap();
        assert_eq!(vectors.len(), 3);
        assert_eq!(vectors[0], e.embed_one("one"));
        assert_eq!(vectors[2], e.embed_one("two"));
        assert!(e.embed(&[]).await.unwrap().is_empty());
    }
}
