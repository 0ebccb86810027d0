//! Market monitoring: what users track (keywords, competitors, feeds, subreddits),
//! the sources that collect items and series for them, the collection run of the
//! `market-monitor` pool, and trend detection on the stored series.
//!
//! # Layout
//! - [`source`]: the trait every source implements, run counts, the quality score;
//! - [`feed`]: RSS/Atom/JSON Feed with conditional GET; [`reddit`]: Reddit search
//!   through OAuth app-only credentials (off without them);
//! - [`series`]: Google Trends CSV and JSON series import;
//! - [`trend`]: Mann–Kendall, Sen's slope, Hamed–Rao, bursts (pure);
//! - [`monitor`]: the pool's handlers, analysis and publishing; [`jobs`]: the
//!   scheduler's `collect` and `analyze` jobs.
//!
//! Invariants: every source says what it can reach and stays off when it cannot;
//! series keep the scale they were collected in, so relative windows are never
//! joined; analysis runs on one series at a time.

use serde::Deserialize;

pub mod feed;
pub mod jobs;
pub mod monitor;
pub mod reddit;
pub mod series;
pub mod source;
pub mod trend;

/// `[market]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSettings {
    /// The least time between two polls of one feed or one subreddit search.
    pub poll_interval_secs: u64,
    /// Longest wait for one answer, body included.
    pub request_timeout_ms: u64,
    /// Most feeds polled at the same time.
    pub max_concurrent_polls: usize,
    /// Largest feed body read.
    pub max_feed_bytes: usize,
    /// The longest a `Retry-After` may defer a source.
    pub max_retry_after_secs: u64,
    /// Sent with every request: who polls and where to read about it.
    pub user_agent: String,
    /// An entry dated within this many hours counts as fresh (quality).
    pub freshness_hours: u64,
    /// The least relative change over the window that makes a trend (0.1 = 10 %).
    pub min_relative_change: f64,
    /// Reddit (off while `client_id` is empty).
    pub reddit: reddit::RedditSettings,
}

impl Default for MarketSettings {
    fn default() -> Self {
        MarketSettings {
            poll_interval_secs: 900,
            request_timeout_ms: 10_000,
            max_concurrent_polls: 8,
            max_feed_bytes: 5 * 1024 * 1024,
            max_retry_after_secs: 86_400,
            user_agent: concat!(
                "strategist/",
                env!("CARGO_PKG_VERSION"),
                " (market monitor; polls feeds its users track)"
            )
            .into(),
            freshness_hours: 72,
            min_relative_change: 0.1,
            reddit: reddit::RedditSettings::default(),
        }
    }
}
