//! Reddit search through OAuth app-only credentials (`client_credentials`).
//! Unauthenticated JSON is blocked and new apps need approval, so the source is
//! off until `[market.reddit]` has a client id and secret.
//!
//! Invariants:
//! - one search per (subreddit, keyword) with `restrict_sr=1`, newest first,
//!   following `after` for at most `max_pages` pages, at most once per interval;
//! - the rate-limit headers are obeyed: when `X-Ratelimit-Remaining` drops below
//!   1 the run stops and no request is made before `X-Ratelimit-Reset` has passed
//!   (kept in the `reddit:ratelimit` source row, so every process sees it);
//! - the User-Agent is Reddit's format `<platform>:<app id>:<version> (by /u/<user>)`;
//! - authors are not stored (a deleted author is `[deleted]` anyway): only the
//!   post's id, title, link, time, score and comment count.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::MarketSettings;
use super::source::{Reach, Run, Source, SourceError, mentions};
use crate::events::market::DataSource;
use crate::store::Store;
use crate::store::market::{Item, SourceState, Tracking};

/// `[market.reddit]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedditSettings {
    /// The app's client id; empty: Reddit is off.
    pub client_id: String,
    /// The app's secret. Never printed.
    pub client_secret: String,
    /// The Reddit account that owns the app, for the User-Agent.
    pub username: String,
    /// Where tokens are issued.
    pub auth_url: String,
    /// The OAuth API.
    pub api_url: String,
    /// Most pages (of 100) followed per search.
    pub max_pages: u32,
}

impl Default for RedditSettings {
    fn default() -> Self {
        RedditSettings {
            client_id: String::new(),
            client_secret: String::new(),
            username: String::new(),
            auth_url: "https://www.reddit.com/api/v1/access_token".into(),
            api_url: "https://oauth.reddit.com".into(),
            max_pages: 3,
        }
    }
}

impl std::fmt::Debug for RedditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedditSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("username", &self.username)
            .field("auth_url", &self.auth_url)
            .field("api_url", &self.api_url)
            .field("max_pages", &self.max_pages)
            .finish()
    }
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Deserialize)]
struct Listing {
    data: ListingData,
}

#[derive(Deserialize)]
struct ListingData {
    after: Option<String>,
    #[serde(default)]
    children: Vec<Child>,
}

#[derive(Deserialize)]
struct Child {
    data: Post,
}

#[derive(Deserialize)]
struct Post {
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    selftext: String,
    #[serde(default)]
    permalink: String,
    #[serde(default)]
    created_utc: f64,
    #[serde(default)]
    score: i64,
    #[serde(default)]
    num_comments: i64,
    #[serde(default)]
    subreddit: String,
}

/// The row that holds the account-wide rate-limit wait.
const LIMIT_ROW: &str = "reddit:ratelimit";

/// The Reddit source.
pub struct RedditSource {
    client: reqwest::Client,
    settings: MarketSettings,
    token: Mutex<Option<(String, std::time::Instant)>>,
}

/// A subreddit name as Reddit allows it (3 to 21 letters, digits, `_`; 2 for a
/// few old ones).
pub fn valid_subreddit(s: &str) -> bool {
    (2..=21).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl RedditSource {
    /// The source; `None` when it has no credentials.
    pub fn new(settings: &MarketSettings) -> Result<Option<RedditSource>, SourceError> {
        let r = &settings.reddit;
        if r.client_id.is_empty() || r.client_secret.is_empty() {
            return Ok(None);
        }
        crate::ai::http_call::install_crypto_provider();
        let ua = format!(
            "server:strategist:{} (by /u/{})",
            env!("CARGO_PKG_VERSION"),
            if r.username.is_empty() {
                "unknown"
            } else {
                &r.username
            }
        );
        let client = reqwest::Client::builder()
            .user_agent(ua)
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SourceError::Unavailable(format!("reddit client: {e}")))?;
        Ok(Some(RedditSource {
            client,
            settings: settings.clone(),
            token: Mutex::new(None),
        }))
    }

    async fn token(&self) -> Result<String, String> {
        let mut t = self.token.lock().await;
        if let Some((tok, until)) = &*t
            && std::time::Instant::now() < *until
        {
            return Ok(tok.clone());
        }
        let r = &self.settings.reddit;
        let resp = self
            .client
            .post(&r.auth_url)
            .basic_auth(&r.client_id, Some(&r.client_secret))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|_| "token request failed".to_owned())?;
        if !resp.status().is_success() {
            return Err(format!("token: HTTP {}", resp.status().as_u16()));
        }
        let tok: Token = resp
            .json()
            .await
            .map_err(|_| "token: unreadable answer".to_owned())?;
        // Renewed a minute early so a search never starts with a dying token.
        let life = Duration::from_secs(tok.expires_in.max(120) - 60);
        *t = Some((tok.access_token.clone(), std::time::Instant::now() + life));
        Ok(tok.access_token)
    }

    async fn collect_all(
        &self,
        store: &Store,
        tracking: &[Tracking],
        now_ms: i64,
    ) -> Result<Run, SourceError> {
        let mut run = Run::default();
        let mut limit = store.source_state(LIMIT_ROW).await?.unwrap_or(SourceState {
            source_id: LIMIT_ROW.into(),
            kind: "reddit".into(),
            url: self.settings.reddit.api_url.clone(),
            ..SourceState::default()
        });
        let mut searches: Vec<(String, String)> = tracking
            .iter()
            .flat_map(|t| t.subreddits.iter().map(|s| (s.clone(), t.keyword.clone())))
            .collect();
        searches.sort();
        searches.dedup();
        if limit.next_poll_at_ms > now_ms {
            run.skipped = searches.len() as u64;
            return Ok(run);
        }
        let interval_ms = (self.settings.poll_interval_secs * 1000) as i64;
        let fresh_after = now_ms - (self.settings.freshness_hours * 3600 * 1000) as i64;
        let competitors: Vec<String> = tracking
            .iter()
            .flat_map(|t| t.competitors.clone())
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut exhausted = false;
        for (sub, kw) in searches {
            let id = format!("reddit:{sub}:{kw}");
            let mut state = store.source_state(&id).await?.unwrap_or(SourceState {
                source_id: id.clone(),
                kind: "reddit".into(),
                url: format!("r/{sub}"),
                ..SourceState::default()
            });
            if exhausted || state.next_poll_at_ms > now_ms {
                run.skipped += 1;
                continue;
            }
            run.due += 1;
            let token = match self.token().await {
                Ok(t) => t,
                Err(e) => {
                    run.failed += 1;
                    state.last_error = Some(e);
                    store.save_source_state(&state).await?;
                    continue;
                }
            };
            let mut after: Option<String> = None;
            let mut ok = true;
            for _ in 0..self.settings.reddit.max_pages.max(1) {
                let url = format!(
                    "{}/r/{sub}/search",
                    self.settings.reddit.api_url.trim_end_matches('/')
                );
                let Ok(mut u) = reqwest::Url::parse(&url) else {
                    ok = false;
                    state.last_error = Some("bad api_url".into());
                    break;
                };
                u.query_pairs_mut().extend_pairs([
                    ("q", kw.as_str()),
                    ("restrict_sr", "1"),
                    ("sort", "new"),
                    ("limit", "100"),
                    ("raw_json", "1"),
                ]);
                if let Some(a) = &after {
                    u.query_pairs_mut().append_pair("after", a);
                }
                let resp = match self.client.get(u).bearer_auth(&token).send().await {
                    Ok(r) => r,
                    Err(_) => {
                        ok = false;
                        state.last_error = Some("search request failed".into());
                        break;
                    }
                };
                let h = resp.headers();
                let num = |n: &str| {
                    h.get(n)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                };
                let remaining = num("x-ratelimit-remaining");
                let reset = num("x-ratelimit-reset").unwrap_or(60.0);
                let status = resp.status();
                state.last_status = Some(i32::from(status.as_u16()));
                if status.as_u16() == 429 || remaining.is_some_and(|r| r < 1.0) {
                    exhausted = true;
                    limit.next_poll_at_ms = now_ms + (reset.max(1.0) * 1000.0) as i64;
                }
                if status.as_u16() == 401 {
                    // Revoked or expired early: the next search asks for a new one.
                    *self.token.lock().await = None;
                }
                if !status.is_success() {
                    ok = false;
                    state.last_error = Some(format!("HTTP {}", status.as_u16()));
                    break;
                }
                let Ok(page) = resp.json::<Listing>().await else {
                    ok = false;
                    state.last_error = Some("not a listing".into());
                    break;
                };
                for c in page.data.children {
                    let p = c.data;
                    run.entries += 1;
                    let at = (p.created_utc * 1000.0) as i64;
                    if at >= fresh_after {
                        run.fresh += 1;
                    }
                    if p.name.is_empty() || p.title.trim().is_empty() {
                        continue;
                    }
                    run.valid += 1;
                    let key = format!("reddit|{}", p.name);
                    if !seen.insert(key.clone()) {
                        continue;
                    }
                    run.distinct += 1;
                    let text = format!("{}\n{}", p.title, p.selftext);
                    let item = Item {
                        item_key: key,
                        source_id: id.clone(),
                        title: p.title.chars().take(1000).collect(),
                        link: Some(format!("https://www.reddit.com{}", p.permalink)),
                        published_at_ms: Some(at),
                        fetched_at_ms: now_ms,
                        keywords: vec![kw.clone()],
                        competitors: mentions(&text, &competitors),
                        community: Some(if p.subreddit.is_empty() {
                            sub.clone()
                        } else {
                            p.subreddit
                        }),
                        score: Some(p.score),
                        comments: Some(p.num_comments),
                    };
                    if store.save_item(&item).await? {
                        run.new_items += 1;
                    }
                }
                after = page.data.after;
                if after.is_none() || exhausted {
                    break;
                }
            }
            if ok {
                run.answered += 1;
                state.last_error = None;
            } else {
                run.failed += 1;
            }
            state.last_polled_at_ms = Some(now_ms);
            state.next_poll_at_ms = now_ms + interval_ms;
            store.save_source_state(&state).await?;
        }
        store.save_source_state(&limit).await?;
        Ok(run)
    }
}

impl Source for RedditSource {
    fn data_source(&self) -> DataSource {
        DataSource::Reddit
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

/// Engagement of one post: log-damped score and comments, so one viral post does
/// not outweigh many ordinary ones.
pub fn engagement(score: i64, comments: i64) -> f64 {
    (1.0 + score.max(0) as f64).ln() + (1.0 + comments.max(0) as f64).ln()
}

/// The engagement of `posts` relative to the median engagement of `trailing`
/// (the subreddit's recent posts): 1.0 is ordinary for that community.
pub fn relative_engagement(posts: &[(i64, i64)], trailing: &[(i64, i64)]) -> Option<f64> {
    if posts.is_empty() || trailing.is_empty() {
        return None;
    }
    let mut base: Vec<f64> = trailing.iter().map(|(s, c)| engagement(*s, *c)).collect();
    base.sort_by(f64::total_cmp);
    let mid = base.len() / 2;
    let median = if base.len() % 2 == 1 {
        base[mid]
    } else {
        (base[mid - 1] + base[mid]) / 2.0
    };
    if median <= 0.0 {
        return None;
    }
    let mean = posts.iter().map(|(s, c)| engagement(*s, *c)).sum::<f64>() / posts.len() as f64;
    Some(mean / median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engagement_is_relative_to_the_community() {
        let trailing = vec![(10, 5), (20, 3), (0, 0), (15, 4), (12, 6)];
        let ordinary = relative_engagement(&[(12, 5)], &trailing).unwrap();
        let viral = relative_engagement(&[(5000, 900)], &trailing).unwrap();
        assert!((0.8..1.2).contains(&ordinary), "{ordinary}");
        assert!(viral > 2.0 && viral < 5.0, "damped: {viral}");
        assert_eq!(relative_engagement(&[], &trailing), None);
    }

    #[test]
    fn subreddit_names() {
        assert!(valid_subreddit("rust"));
        assert!(!valid_subreddit("r/rust"));
        assert!(!valid_subreddit("a"));
    }
}
