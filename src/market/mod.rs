//! Market monitoring: what users track (keywords, competitors, feeds, subreddits),
//! the sources that collect items and series for them, the collection run of the
//! `market-monitor` pool, and trend detection on the stored series.
//!
//! # Layout
//! - [`source`]: the trait every source implements, run counts, the quality score;
//! - [`feed`]: RSS/Atom/JSON Feed with conditional GET; [`reddit`]: Reddit search
//!   through OAuth app-only credentials (off without them);
//! - [`series`]: Google Trends CSV and JSON series import; [`google_trends`]: the
//!   official Trends API (alpha) behind an API key (off without one);
//! - [`trend`]: Mann–Kendall, Sen's slope, Hamed–Rao, bursts (pure);
//! - [`briefing_data`]: what briefings read of the stored market data;
//! - [`monitor`]: the pool's handlers, analysis and publishing; [`jobs`]: the
//!   scheduler's `collect` and `analyze` jobs.
//!
//! Invariants: every source says what it can reach and stays off when it cannot;
//! series keep the scale they were collected in, so relative windows are never
//! joined; analysis runs on one series at a time.

use serde::Deserialize;

pub mod briefing_data;
pub mod feed;
pub mod google_trends;
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
    /// Accept feed URLs naming loopback, private or link-local addresses (tests,
    /// a trusted intranet). Off: users cannot make the server fetch its own
    /// network.
    pub allow_private_feeds: bool,
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
    /// The Google Trends API (off while `api_key` is empty).
    pub google_trends: google_trends::GoogleTrendsSettings,
}

impl Default for MarketSettings {
    fn default() -> Self {
        MarketSettings {
            poll_interval_secs: 900,
            request_timeout_ms: 10_000,
            max_concurrent_polls: 8,
            allow_private_feeds: false,
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
            google_trends: google_trends::GoogleTrendsSettings::default(),
        }
    }
}

/// Whether `url` names a host users may make the server fetch: not `localhost`
/// nor a loopback, private, link-local, unspecified or shared address literal.
/// (A public name that resolves to a private address is not caught here.)
pub fn public_host(url: &reqwest::Url) -> bool {
    use std::net::IpAddr;
    let Some(host) = url.host_str() else {
        return false;
    };
    let ip = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(ip) => ip,
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            return d != "localhost" && !d.ends_with(".localhost");
        }
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_hosts_are_not_public() {
        let p = |u: &str| public_host(&reqwest::Url::parse(u).unwrap());
        assert!(p("https://news.example/feed"));
        assert!(p("http://93.184.216.34/rss"));
        for u in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[::ffff:192.168.0.1]/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
        ] {
            assert!(!p(u), "{u}");
        }
    }
}
