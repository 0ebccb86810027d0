//! Google Trends through its official API (alpha since July 2025, by application
//! only), behind an API key: off while `[market.google_trends] api_key` is empty,
//! and then `reach` says so and points at the CSV import.
//!
//! # The request and answer shape
//! Google has not published the alpha API's reference: what is public is that it
//! serves a rolling five years, daily/weekly/monthly/yearly aggregation, regions,
//! and *consistently scaled* interest (not 0–100 per request, so windows of
//! several requests can be compared). The shape below is therefore this module's
//! own minimal design, kept in one place ([`request_url`], [`Answer`]) so that it
//! can follow the real reference when it appears:
//!
//! - `GET {base_url}/interestOverTime?term=<keyword>&granularity=<day|week|month>
//!   &startDate=<YYYY-MM-DD>&endDate=<YYYY-MM-DD>[&geo=<region>]` with the key in
//!   the `X-Goog-Api-Key` header (Google's API-key header; the key stays out of
//!   URLs and logs);
//! - the answer: `{"term": "...", "scale": "CONSISTENT"|"RELATIVE",
//!   "points": [{"date": "YYYY-MM-DD" or RFC 3339, "value": number}]}`; a missing
//!   `scale` is read as `CONSISTENT`, what the API announces.
//!
//! Invariants:
//! - the series keeps the scale the API reports: `CONSISTENT` is stored as
//!   `absolute` (comparable across requests), `RELATIVE` as `relative`; each answer
//!   is a series of its own ([`crate::market::series`]), never joined with another;
//!   an answer equal to the keyword's newest series is not stored again;
//! - each keyword is asked at most once per `poll_interval_secs` (its row in
//!   `market_sources`, `trends:<keyword>`);
//! - a 429 (or a 403 with `Retry-After`) defers the whole key, as the quota is the
//!   key's: nothing is asked before its `Retry-After` (capped by
//!   `market.max_retry_after_secs`; the interval when absent), kept in the
//!   `trends:ratelimit` row so every process sees it.

use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde::Deserialize;

use super::MarketSettings;
use super::series::{self, JsonPoint, JsonSeries, Parsed};
use super::source::{Reach, Run, Source, SourceError};
use crate::events::market::DataSource;
use crate::store::Store;
use crate::store::market::{Series, SourceState, Tracking};

/// `[market.google_trends]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleTrendsSettings {
    /// The API key; empty: the source is off. Never printed.
    pub api_key: String,
    /// The API's base URL (tests point it at a local server).
    pub base_url: String,
    /// Region (`US`, `DE-BY`); empty: worldwide.
    pub geo: String,
    /// `day`, `week` or `month`.
    pub granularity: String,
    /// How far back each request reaches.
    pub window_days: u32,
    /// The least time between two requests for one keyword.
    pub poll_interval_secs: u64,
}

impl Default for GoogleTrendsSettings {
    fn default() -> Self {
        GoogleTrendsSettings {
            api_key: String::new(),
            base_url: "https://trends.googleapis.com/v1alpha".into(),
            geo: String::new(),
            granularity: "week".into(),
            window_days: 365,
            poll_interval_secs: 86_400,
        }
    }
}

impl std::fmt::Debug for GoogleTrendsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleTrendsSettings")
            .field("api_key", &if self.api_key.is_empty() { "" } else { "***" })
            .field("base_url", &self.base_url)
            .field("geo", &self.geo)
            .field("granularity", &self.granularity)
            .field("window_days", &self.window_days)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .finish()
    }
}

/// The answer (see the module doc: a designed shape).
#[derive(Debug, Deserialize)]
pub struct Answer {
    /// The term the series is for.
    #[serde(default)]
    pub term: Option<String>,
    /// `CONSISTENT` or `RELATIVE` (any case).
    #[serde(default)]
    pub scale: Option<String>,
    /// The series.
    pub points: Vec<AnswerPoint>,
}

/// One point of an answer.
#[derive(Debug, Deserialize)]
pub struct AnswerPoint {
    /// `YYYY-MM-DD`, `YYYY-MM` or RFC 3339.
    pub date: String,
    /// The interest.
    pub value: f64,
}

/// The row holding the key-wide wait after a 429.
const LIMIT_ROW: &str = "trends:ratelimit";

/// The series origin stored.
pub const ORIGIN: &str = "google_trends_api";

/// What one request gave.
#[derive(Debug)]
enum Polled {
    Series(Parsed),
    Throttled { status: u16, wait: Duration },
    Failed { status: u16, reason: String },
}

/// Reads an answer body as the series of `keyword`.
pub fn parse_answer(keyword: &str, body: &[u8]) -> Result<Parsed, String> {
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| format!("not a Trends API answer: {e}"))?;
    if let Some(t) = &a.term
        && !t.trim().eq_ignore_ascii_case(keyword)
    {
        return Err("the answer is for another term".into());
    }
    let scale = match a.scale.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("consistent") => "absolute",
        Some("relative") => "relative",
        Some(other) => return Err(format!("unknown scale `{other}`")),
    };
    let json = JsonSeries {
        keyword: keyword.to_owned(),
        scale: Some(scale.to_owned()),
        points: a
            .points
            .into_iter()
            .map(|p| JsonPoint {
                t: p.date,
                value: p.value,
            })
            .collect(),
    };
    let mut parsed = series::parse_json(json).map_err(|e| e.to_string())?;
    parsed.origin = ORIGIN.to_owned();
    Ok(parsed)
}

/// The request URL for `keyword` ending on `now_ms`'s UTC day (no key in it).
pub fn request_url(
    s: &GoogleTrendsSettings,
    keyword: &str,
    now_ms: i64,
) -> Result<reqwest::Url, String> {
    let end = chrono::DateTime::from_timestamp_millis(now_ms)
        .ok_or("the clock is out of range")?
        .date_naive();
    let start = end - chrono::Days::new(u64::from(s.window_days));
    let base = s.base_url.trim_end_matches('/');
    let mut url = reqwest::Url::parse(&format!("{base}/interestOverTime"))
        .map_err(|e| format!("market.google_trends.base_url: {e}"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("term", keyword)
            .append_pair("granularity", &s.granularity)
            .append_pair("startDate", &start.format("%Y-%m-%d").to_string())
            .append_pair("endDate", &end.format("%Y-%m-%d").to_string());
        if !s.geo.is_empty() {
            q.append_pair("geo", &s.geo);
        }
    }
    Ok(url)
}

/// The Trends API source.
pub struct GoogleTrendsSource {
    client: reqwest::Client,
    settings: MarketSettings,
}

impl GoogleTrendsSource {
    /// The source; `None` without an API key.
    pub fn new(settings: &MarketSettings) -> Result<Option<GoogleTrendsSource>, SourceError> {
        let g = &settings.google_trends;
        if g.api_key.is_empty() {
            return Ok(None);
        }
        if !matches!(g.granularity.as_str(), "day" | "week" | "month") {
            return Err(SourceError::Unavailable(format!(
                "market.google_trends.granularity: `{}` is not day, week or month",
                g.granularity
            )));
        }
        crate::ai::http_call::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SourceError::Unavailable(format!("trends client: {e}")))?;
        Ok(Some(GoogleTrendsSource {
            client,
            settings: settings.clone(),
        }))
    }

    async fn poll(&self, url: reqwest::Url, keyword: &str) -> Polled {
        let resp = self
            .client
            .get(url)
            .header("X-Goog-Api-Key", &self.settings.google_trends.api_key)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let reason = if e.is_timeout() {
                    "timed out"
                } else {
                    "could not connect or read"
                };
                return Polled::Failed {
                    status: 0,
                    reason: reason.into(),
                };
            }
        };
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::FORBIDDEN {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::ai::http_call::parse_retry_after(v, SystemTime::now()));
            if status == StatusCode::TOO_MANY_REQUESTS || after.is_some() {
                let wait = after
                    .unwrap_or(Duration::from_secs(
                        self.settings.google_trends.poll_interval_secs,
                    ))
                    .min(Duration::from_secs(self.settings.max_retry_after_secs));
                return Polled::Throttled {
                    status: status.as_u16(),
                    wait,
                };
            }
        }
        if !status.is_success() {
            return Polled::Failed {
                status: status.as_u16(),
                reason: format!("HTTP {}", status.as_u16()),
            };
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) if body.len() + c.len() > self.settings.max_feed_bytes => {
                    return Polled::Failed {
                        status: status.as_u16(),
                        reason: format!("larger than {} bytes", self.settings.max_feed_bytes),
                    };
                }
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) => break,
                Err(_) => {
                    return Polled::Failed {
                        status: status.as_u16(),
                        reason: "the body could not be read".into(),
                    };
                }
            }
        }
        match parse_answer(keyword, &body) {
            Ok(p) => Polled::Series(p),
            Err(reason) => Polled::Failed {
                status: status.as_u16(),
                reason,
            },
        }
    }

    async fn collect_all(
        &self,
        store: &Store,
        tracking: &[Tracking],
        now_ms: i64,
    ) -> Result<Run, SourceError> {
        let g = &self.settings.google_trends;
        let mut run = Run::default();
        let mut keywords: Vec<&str> = tracking.iter().map(|t| t.keyword.as_str()).collect();
        keywords.sort_unstable();
        keywords.dedup();
        let mut limit = store.source_state(LIMIT_ROW).await?.unwrap_or(SourceState {
            source_id: LIMIT_ROW.into(),
            kind: "google_trends".into(),
            url: g.base_url.clone(),
            ..SourceState::default()
        });
        if limit.next_poll_at_ms > now_ms {
            run.skipped = keywords.len() as u64;
            return Ok(run);
        }
        let interval_ms =
            i64::try_from(g.poll_interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let fresh_ms = i64::try_from(self.settings.freshness_hours.saturating_mul(3_600_000))
            .unwrap_or(i64::MAX);
        let mut throttled = false;
        for kw in keywords {
            let id = format!("trends:{kw}");
            let url = request_url(g, kw, now_ms).map_err(SourceError::Unavailable)?;
            let mut state = store.source_state(&id).await?.unwrap_or(SourceState {
                source_id: id.clone(),
                kind: "google_trends".into(),
                url: url.to_string(),
                ..SourceState::default()
            });
            if throttled || state.next_poll_at_ms > now_ms {
                run.skipped += 1;
                continue;
            }
            run.due += 1;
            state.url = url.to_string();
            state.last_polled_at_ms = Some(now_ms);
            state.next_poll_at_ms = now_ms.saturating_add(interval_ms);
            match self.poll(url, kw).await {
                Polled::Series(p) => {
                    run.answered += 1;
                    run.entries += 1;
                    run.valid += 1;
                    run.distinct += 1;
                    let last = p.points.last().map_or(i64::MIN, |(t, _)| *t);
                    if last.saturating_add(p.step_ms).saturating_add(fresh_ms) >= now_ms {
                        run.fresh += 1;
                    }
                    let same = store.latest_series(kw).await?.is_some_and(|(s, points)| {
                        s.origin == p.origin && s.scale == p.scale && points == p.points
                    });
                    if same {
                        run.not_modified += 1;
                    } else {
                        let s = Series {
                            series_id: ulid::Ulid::generate().to_string(),
                            keyword: kw.to_owned(),
                            origin: p.origin,
                            scale: p.scale,
                            step_ms: p.step_ms,
                            created_at_ms: now_ms,
                        };
                        store.save_series(&s, &p.points).await?;
                        run.new_items += 1;
                    }
                    state.last_status = Some(200);
                    state.last_error = None;
                }
                Polled::Throttled { status, wait } => {
                    run.failed += 1;
                    throttled = true;
                    let until = now_ms.saturating_add(wait.as_millis() as i64);
                    state.next_poll_at_ms = until;
                    state.last_status = Some(i32::from(status));
                    state.last_error =
                        Some(format!("HTTP {status}: retry after {} s", wait.as_secs()));
                    limit.next_poll_at_ms = until;
                    limit.last_polled_at_ms = Some(now_ms);
                    limit.last_status = Some(i32::from(status));
                    store.save_source_state(&limit).await?;
                }
                Polled::Failed { status, reason } => {
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

impl Source for GoogleTrendsSource {
    fn data_source(&self) -> DataSource {
        DataSource::GoogleTrends
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

/// Why the source is off (no key), for `reach`.
pub fn off_reason() -> String {
    "no [market.google_trends] api_key (the Trends API is alpha, by application): \
     import exports with POST /api/v1/market/series"
        .into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_answer_keeps_its_scale_and_a_bad_one_says_why() {
        let body = br#"{"term":"Rust","scale":"CONSISTENT","points":[
            {"date":"2025-01-05","value":1200.5},{"date":"2025-01-12","value":1300}]}"#;
        let p = parse_answer("rust", body).unwrap();
        assert_eq!((p.scale.as_str(), p.origin.as_str()), ("absolute", ORIGIN));
        assert_eq!(p.step_ms, 7 * 86_400_000);
        let rel = br#"{"scale":"relative","points":[{"date":"2025-01","value":100}]}"#;
        assert_eq!(parse_answer("rust", rel).unwrap().scale, "relative");
        let other = br#"{"term":"go","points":[{"date":"2025-01-05","value":1}]}"#;
        assert!(
            parse_answer("rust", other)
                .unwrap_err()
                .contains("another term")
        );
        let odd = br#"{"scale":"LOG","points":[{"date":"2025-01-05","value":1}]}"#;
        assert!(parse_answer("rust", odd).unwrap_err().contains("scale"));
        assert!(
            parse_answer("rust", b"<html>")
                .unwrap_err()
                .contains("not a Trends")
        );
    }

    #[test]
    fn the_request_names_the_term_window_and_region_but_not_the_key() {
        let s = GoogleTrendsSettings {
            api_key: "secret".into(),
            geo: "DE".into(),
            window_days: 7,
            ..GoogleTrendsSettings::default()
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
            .unwrap()
            .timestamp_millis();
        let u = request_url(&s, "rust lang", now).unwrap().to_string();
        assert_eq!(
            u,
            "https://trends.googleapis.com/v1alpha/interestOverTime?term=rust+lang&granularity=week&startDate=2026-03-03&endDate=2026-03-10&geo=DE"
        );
        assert!(!format!("{s:?}").contains("secret"));
    }
}
