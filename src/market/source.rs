//! The one trait every market source implements, what a collection run counts,
//! and the data quality score built from those counts.
//!
//! Invariants:
//! - a source says whether it can reach anything ([`Reach`]) before it is asked:
//!   one without credentials is `Off` and collects nothing, rather than failing
//!   every run;
//! - a source polls each of its endpoints at most once per configured interval and
//!   never before a `Retry-After` it was given; the state lives in the database
//!   (`market_sources`), so every process sees it;
//! - the quality score is the weighted mean of four parts in [0, 1] (README:
//!   "Data quality score"), each 1 when there was nothing to judge.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::events::market::DataSource;
use crate::store::market::Tracking;
use crate::store::{Store, StoreError};

/// Whether a source can reach anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Reach {
    /// Configured and allowed.
    Available,
    /// Off, and why (no credentials, ...).
    Off(String),
}

/// Why a run could not be done at all (one endpoint failing is counted, not this).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source cannot work (bad configuration, no credentials accepted).
    #[error("{0}")]
    Unavailable(String),
}

/// What one run of a source counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Run {
    /// Endpoints due this run (feeds, subreddit searches).
    pub due: u64,
    /// Endpoints not polled: their interval or Retry-After has not passed.
    pub skipped: u64,
    /// Endpoints that answered with content or 304.
    pub answered: u64,
    /// Of those, 304 Not Modified.
    pub not_modified: u64,
    /// Endpoints that failed (status, transport, not a feed).
    pub failed: u64,
    /// Entries read from the answers.
    pub entries: u64,
    /// Entries with a title, a key (id or link) and a date.
    pub valid: u64,
    /// Entries dated within the freshness window.
    pub fresh: u64,
    /// Distinct keys among the entries of this run.
    pub distinct: u64,
    /// Entries stored for the first time.
    pub new_items: u64,
}

/// The four parts of the data quality score and the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Endpoints that answered over endpoints due.
    pub coverage: f64,
    /// Entries dated within the freshness window over entries.
    pub freshness: f64,
    /// Distinct keys over entries (the same item in two feeds counts once).
    pub uniqueness: f64,
    /// Valid entries over entries.
    pub validity: f64,
    /// 0.4 coverage + 0.2 each of the others.
    pub score: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        (part as f64 / whole as f64).clamp(0.0, 1.0)
    }
}

impl Run {
    /// The quality of this run.
    pub fn quality(&self) -> Quality {
        let coverage = ratio(self.answered, self.due);
        let freshness = ratio(self.fresh, self.entries);
        let uniqueness = ratio(self.distinct, self.entries);
        let validity = ratio(self.valid, self.entries);
        Quality {
            coverage,
            freshness,
            uniqueness,
            validity,
            score: 0.4 * coverage + 0.2 * (freshness + uniqueness + validity),
        }
    }
}

/// A market source.
pub trait Source: Send + Sync {
    /// Which `data_source` it is in the events.
    fn data_source(&self) -> DataSource;
    /// Whether it can reach anything.
    fn reach(&self) -> Reach;
    /// Collects for `tracking` (what users track, already narrowed to the run's
    /// keywords), storing items and polling state; `now_ms` is the run's clock.
    fn collect<'a>(
        &'a self,
        store: &'a Store,
        tracking: &'a [Tracking],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Run, SourceError>>;
}

/// The tracked keywords and competitors a text mentions (case-insensitive, whole
/// words): what ties an item to the users tracking them.
pub fn mentions(text: &str, terms: &[String]) -> Vec<String> {
    let hay = text.to_lowercase();
    let mut out: Vec<String> = terms
        .iter()
        .filter(|t| !t.is_empty())
        .filter(|t| {
            let needle = t.to_lowercase();
            hay.match_indices(&needle).any(|(i, m)| {
                let before = hay[..i].chars().next_back();
                let after = hay[i + m.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_is_one_when_there_is_nothing_to_judge() {
        let q = Run::default().quality();
        assert_eq!(q.score, 1.0);
    }

    #[test]
    fn quality_weighs_its_parts() {
        let r = Run {
            due: 4,
            answered: 2,
            entries: 10,
            valid: 10,
            fresh: 5,
            distinct: 10,
            ..Run::default()
        };
        let q = r.quality();
        assert_eq!(q.coverage, 0.5);
        assert_eq!(q.freshness, 0.5);
        assert!((q.score - (0.2 + 0.1 + 0.2 + 0.2)).abs() < 1e-12);
    }

    #[test]
    fn mentions_are_whole_words_and_case_insensitive() {
        let terms = vec!["rust".to_string(), "Acme".to_string()];
        assert_eq!(mentions("Trusty tools by ACME", &terms), vec!["Acme"]);
        assert_eq!(mentions("Rust 2026: what's new", &terms), vec!["rust"]);
    }
}
