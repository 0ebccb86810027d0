//! RSS 2.0, Atom and JSON Feed, polled politely: a conditional GET with the
//! validators of the last answer, a descriptive User-Agent, gzip, at most one poll
//! per feed per interval, and a `Retry-After` on 429/403 honoured before the next.
//!
//! Invariants:
//! - `ETag` and `Last-Modified` are stored byte for byte as received and sent back
//!   unchanged (`If-None-Match`, `If-Modified-Since`); a 304 keeps them;
//! - the body is parsed by feed-rs from the bytes (it reads the XML declaration's
//!   encoding itself) and read up to `max_feed_bytes`, never more;
//! - an answer that is not a feed (an HTML block page, a captcha) is a failure of
//!   that feed, never items;
//! - an item's key is its entry id, else its normalised link: the same article
//!   polled again, or reached with tracking parameters, is stored once.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_TYPE, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RETRY_AFTER,
};

use super::MarketSettings;
use super::source::{Reach, Run, Source, SourceError, mentions};
use crate::events::market::DataSource;
use crate::store::Store;
use crate::store::market::{Item, SourceState, Tracking};

/// What one poll of one feed gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// 304: nothing new.
    NotModified,
    /// A feed and its entries.
    Entries(Vec<Entry>),
    /// Refused for a while (429, or 403 with a Retry-After).
    Throttled {
        /// The status.
        status: u16,
        /// How long to wait.
        retry_after: Duration,
    },
    /// Anything else: the status (0 for transport) and one line of why.
    Failed {
        /// The status.
        status: u16,
        /// Why.
        reason: String,
    },
}

/// One entry of a feed, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The dedup key within the feed: entry id, else normalised link.
    pub key: Option<String>,
    /// The title (empty when it has none).
    pub title: String,
    /// The first link.
    pub link: Option<String>,
    /// Published, else updated.
    pub at_ms: Option<i64>,
    /// Title and summary, for matching keywords.
    pub text: String,
}

/// The feed source.
pub struct FeedSource {
    client: reqwest::Client,
    settings: MarketSettings,
}

/// A link without what does not make it another page: the fragment, `utm_*` and
/// similar tracking parameters, a trailing slash, the case of scheme and host
/// (the `url` crate lowers those when parsing).
pub fn normalise_link(link: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(link.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !(k.starts_with("utm_") || matches!(k.as_str(), "fbclid" | "gclid" | "ref"))
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let path = url.path().to_owned();
    if path.len() > 1 && path.ends_with('/') {
        url.set_path(path.trim_end_matches('/'));
    }
    Some(url.to_string())
}

/// Reads the entries of a feed body, or says why it is not one.
pub fn parse_feed(bytes: &[u8], content_type: &str) -> Result<Vec<Entry>, String> {
    let parser = feed_rs::parser::Builder::new()
        // No invented ids: an entry without one falls back to its link.
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser.parse(bytes).map_err(|e| {
        if content_type.contains("html") {
            "an HTML page, not a feed (blocked or moved?)".to_owned()
        } else {
            let mut m = e.to_string();
            m.truncate(200);
            format!("not a feed: {m}")
        }
    })?;
    Ok(feed
        .entries
        .into_iter()
        .map(|e| {
            let title = e.title.map(|t| t.content).unwrap_or_default();
            let summary = e.summary.map(|t| t.content).unwrap_or_default();
            // JSON Feed's content_text and Atom's content carry the text when
            // there is no summary; capped, since only mentions are looked for.
            let body: String = e
                .content
                .and_then(|c| c.body)
                .unwrap_or_default()
                .chars()
                .take(20_000)
                .collect();
            let link = e.links.first().map(|l| l.href.clone());
            let key = Some(e.id.trim().to_owned())
                .filter(|k| !k.is_empty())
                .or_else(|| link.as_deref().and_then(normalise_link));
            Entry {
                key,
                text: format!("{title}\n{summary}\n{body}"),
                title: title.trim().to_owned(),
                link,
                at_ms: e.published.or(e.updated).map(|t| t.timestamp_millis()),
            }
        })
        .collect())
}

/// A header's value exactly as received (bytes that are not UTF-8 are replaced,
/// which no real validator has).
fn header(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// At most 5 redirects, never to a private or loopback address unless allowed
/// (a public feed must not bounce the server into its own network).
fn redirects(allow_private: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if !allow_private && !super::public_host(attempt.url()) {
            attempt.error("redirect to a private or loopback address")
        } else if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}

impl FeedSource {
    /// A source with its own HTTP client (gzip, the configured User-Agent and
    /// timeout, at most 5 redirects and none into a private network).
    pub fn new(settings: &MarketSettings) -> Result<FeedSource, SourceError> {
        crate::ai::http_call::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .redirect(redirects(settings.allow_private_feeds))
            .build()
            .map_err(|e| SourceError::Unavailable(format!("feed client: {e}")))?;
        Ok(FeedSource {
            client,
            settings: settings.clone(),
        })
    }

    /// One conditional GET of `url` with the validators of `state`; the new
    /// validators, when the answer had any, come back with the poll.
    pub async fn poll(
        &self,
        url: &str,
        state: &SourceState,
    ) -> (Poll, Option<String>, Option<String>) {
        let allowed = reqwest::Url::parse(url)
            .is_ok_and(|u| self.settings.allow_private_feeds || super::public_host(&u));
        if !allowed {
            let reason = "a private or loopback address (market.allow_private_feeds is off)";
            return (
                Poll::Failed {
                    status: 0,
                    reason: reason.into(),
                },
                None,
                None,
            );
        }
        let mut req = self.client.get(url);
        if let Some(e) = &state.etag {
            req = req.header(IF_NONE_MATCH, e.as_str());
        }
        if let Some(m) = &state.last_modified {
            req = req.header(IF_MODIFIED_SINCE, m.as_str());
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let reason = if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "could not connect or read".to_owned()
                };
                return (Poll::Failed { status: 0, reason }, None, None);
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let etag = header(&headers, ETAG);
        let modified = header(&headers, LAST_MODIFIED);
        if status == StatusCode::NOT_MODIFIED {
            return (Poll::NotModified, etag, modified);
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::FORBIDDEN {
            let after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::ai::http_call::parse_retry_after(v, SystemTime::now()));
            if status == StatusCode::TOO_MANY_REQUESTS || after.is_some() {
                let cap = Duration::from_secs(self.settings.max_retry_after_secs);
                let wait = after
                    .unwrap_or(Duration::from_secs(self.settings.poll_interval_secs))
                    .min(cap);
                return (
                    Poll::Throttled {
                        status: status.as_u16(),
                        retry_after: wait,
                    },
                    None,
                    None,
                );
            }
        }
        if !status.is_success() {
            return (
                Poll::Failed {
                    status: status.as_u16(),
                    reason: format!("HTTP {}", status.as_u16()),
                },
                None,
                None,
            );
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > self.settings.max_feed_bytes {
                        return (
                            Poll::Failed {
                                status: status.as_u16(),
                                reason: format!(
                                    "larger than {} bytes",
                                    self.settings.max_feed_bytes
                                ),
                            },
                            None,
                            None,
                        );
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(_) => {
                    return (
                        Poll::Failed {
                            status: status.as_u16(),
                            reason: "the body could not be read".into(),
                        },
                        None,
                        None,
                    );
                }
            }
        }
        let ctype = header(&headers, CONTENT_TYPE).unwrap_or_default();
        match parse_feed(&body, &ctype.to_ascii_lowercase()) {
            Ok(entries) => (Poll::Entries(entries), etag, modified),
            Err(reason) => (
                Poll::Failed {
                    status: status.as_u16(),
                    reason,
                },
                None,
                None,
            ),
        }
    }

    async fn collect_all(
        &self,
        store: &Store,
        tracking: &[Tracking],
        now_ms: i64,
    ) -> Result<Run, SourceError> {
        let mut feeds: Vec<&str> = tracking
            .iter()
            .flat_map(|t| t.feeds.iter().map(String::as_str))
            .collect();
        feeds.sort_unstable();
        feeds.dedup();
        let interval_ms = (self.settings.poll_interval_secs * 1000) as i64;
        let fresh_after = now_ms - (self.settings.freshness_hours * 3600 * 1000) as i64;
        let mut run = Run::default();
        let mut seen = std::collections::HashSet::new();
        let mut due = Vec::new();
        for url in feeds {
            let id = format!("feed:{url}");
            let state = store.source_state(&id).await?.unwrap_or(SourceState {
                source_id: id.clone(),
                kind: "feed".into(),
                url: url.to_owned(),
                ..SourceState::default()
            });
            if state.next_poll_at_ms > now_ms {
                run.skipped += 1;
            } else {
                due.push((url.to_owned(), state));
            }
        }
        run.due = due.len() as u64;
        // The network waits overlap (different hosts, mostly); what they give is
        // stored one feed at a time, in URL order, so dedup is deterministic.
        let mut polled: Vec<_> = futures_util::stream::iter(due)
            .map(|(url, state): (String, SourceState)| async move {
                let answer = self.poll(&url, &state).await;
                (url, state, answer)
            })
            .buffer_unordered(self.settings.max_concurrent_polls.max(1))
            .collect()
            .await;
        polled.sort_by(|a, b| a.0.cmp(&b.0));
        for (url, mut state, (poll, etag, modified)) in polled {
            let id = state.source_id.clone();
            state.last_polled_at_ms = Some(now_ms);
            state.next_poll_at_ms = now_ms + interval_ms;
            state.last_error = None;
            match poll {
                Poll::NotModified => {
                    run.answered += 1;
                    run.not_modified += 1;
                    state.last_status = Some(304);
                    // A 304 may repeat or update the validators; without them the
                    // old ones still stand.
                    state.etag = etag.or(state.etag);
                    state.last_modified = modified.or(state.last_modified);
                }
                Poll::Entries(entries) => {
                    run.answered += 1;
                    state.last_status = Some(200);
                    state.etag = etag;
                    state.last_modified = modified;
                    let users: Vec<&Tracking> =
                        tracking.iter().filter(|t| t.feeds.contains(&url)).collect();
                    let keywords: Vec<String> = users.iter().map(|t| t.keyword.clone()).collect();
                    let competitors: Vec<String> =
                        users.iter().flat_map(|t| t.competitors.clone()).collect();
                    for e in entries {
                        run.entries += 1;
                        if e.at_ms.is_some_and(|t| t >= fresh_after) {
                            run.fresh += 1;
                        }
                        let Some(key) = e.key.clone() else { continue };
                        if e.title.is_empty() {
                            continue;
                        }
                        if e.at_ms.is_some() {
                            run.valid += 1;
                        }
                        // Entry ids are unique per feed; a link is the same page
                        // whichever feed carries it.
                        let item_key = if e.key.as_deref()
                            == e.link.as_deref().and_then(normalise_link).as_deref()
                        {
                            format!("link|{key}")
                        } else {
                            format!("{id}|{key}")
                        };
                        if !seen.insert(item_key.clone()) {
                            continue;
                        }
                        run.distinct += 1;
                        let item = Item {
                            item_key,
                            source_id: id.clone(),
                            title: e.title.chars().take(1000).collect(),
                            link: e.link.clone(),
                            published_at_ms: e.at_ms,
                            fetched_at_ms: now_ms,
                            keywords: mentions(&e.text, &keywords),
                            competitors: mentions(&e.text, &competitors),
                            community: None,
                            score: None,
                            comments: None,
                        };
                        if store.save_item(&item).await? {
                            run.new_items += 1;
                        }
                    }
                }
                Poll::Throttled {
                    status,
                    retry_after,
                } => {
                    run.failed += 1;
                    state.last_status = Some(i32::from(status));
                    state.next_poll_at_ms = now_ms + retry_after.as_millis() as i64;
                    state.last_error = Some(format!(
                        "HTTP {status}: retry after {} s",
                        retry_after.as_secs()
                    ));
                }
                Poll::Failed { status, reason } => {
                    run.failed += 1;
                    state.last_status = Some(i32::from(status));
                    state.last_error = Some(reason);
                }
            }
            store.save_source_state(&state).await?;
        }
        Ok(run)
    }
}

impl Source for FeedSource {
    fn data_source(&self) -> DataSource {
        DataSource::RssFeeds
    }

    fn reach(&self) -> Reach {
        Reach::Available
    }

    fn collect<'a>(
        &'a self,
        store: &'a Store,
        tracking: &'a [Tracking],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Run, SourceError>> {
        Box::pin(self.collect_all(store, tracking, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_lose_tracking_and_fragments() {
        assert_eq!(
            normalise_link("HTTPS://Example.COM/a/b/?utm_source=x&id=3#top").as_deref(),
            Some("https://example.com/a/b?id=3")
        );
        assert_eq!(
            normalise_link("https://example.com/").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(normalise_link("mailto:a@b.c"), None);
    }

    #[test]
    fn an_html_page_is_not_a_feed() {
        let html = b"<!doctype html><html><body>Access denied</body></html>";
        let e = parse_feed(html, "text/html; charset=utf-8").unwrap_err();
        assert!(e.contains("HTML"), "{e}");
    }

    #[test]
    fn an_entry_without_id_is_keyed_by_its_link() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
          <item><title>A</title><link>https://ex.com/a?utm_medium=rss</link></item>
          <item><title>B</title><guid>b-1</guid><link>https://ex.com/b</link></item>
          </channel></rss>"#;
        let e = parse_feed(rss, "application/rss+xml").unwrap();
        assert_eq!(e[0].key.as_deref(), Some("https://ex.com/a"));
        assert_eq!(e[1].key.as_deref(), Some("b-1"));
    }
}
