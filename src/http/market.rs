//! Market tracking, series import and trends: `POST/GET /market/keywords`,
//! `DELETE /market/keywords/{keyword}`, `POST /market/series`,
//! `GET /market/trends`.
//!
//! Invariants: a user reaches only their own tracking; a series may be imported
//! by an admin or by a user who tracks its keyword (series are shared per keyword,
//! so nobody else can skew them); an import is analysed at once, so
//! `GET /market/trends` right after it shows its analysis. Tracking a keyword with
//! feeds publishes `market.data.collection.started` for them.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use ulid::Ulid;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Body, Caller, ErrorBody};
use crate::events::market::{DataSource, MarketDataCollectionStarted};
use crate::market::series::{self, JsonSeries, Parsed};
use crate::store::market::{Series, Tracking};

/// Most entries in each list of a tracking.
const MAX_LIST: usize = 20;
/// Most keywords one user tracks.
const MAX_KEYWORDS: usize = 100;
/// Largest series import.
const MAX_IMPORT_BYTES: usize = 1024 * 1024;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(track)
        .service(list)
        .service(untrack)
        .service(import)
        .service(trends);
}

/// `POST /market/keywords`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TrackRequest {
    /// The keyword (1 to 100 characters; stored trimmed and lower case).
    keyword: String,
    /// Competitor names an item may mention.
    #[serde(default)]
    competitors: Vec<String>,
    /// Feed URLs (http or https): RSS, Atom or JSON Feed.
    #[serde(default)]
    feeds: Vec<String>,
    /// Subreddit names without `r/` (searched when Reddit is configured).
    #[serde(default)]
    subreddits: Vec<String>,
}

fn check_list(field: &str, v: &[String]) -> Result<(), ApiError> {
    if v.len() > MAX_LIST {
        return Err(ApiError::invalid_field(
            field,
            format!("at most {MAX_LIST}"),
        ));
    }
    Ok(())
}

fn tracking(caller: &Caller, req: TrackRequest, allow_private: bool) -> Result<Tracking, ApiError> {
    let keyword =
        series::keyword(&req.keyword).map_err(|e| ApiError::invalid_field("keyword", e))?;
    check_list("competitors", &req.competitors)?;
    check_list("feeds", &req.feeds)?;
    check_list("subreddits", &req.subreddits)?;
    let mut competitors = Vec::new();
    for (i, c) in req.competitors.iter().enumerate() {
        let c = c.trim();
        if c.is_empty() || c.chars().count() > 100 || c.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                &format!("competitors[{i}]"),
                "1 to 100 characters",
            ));
        }
        competitors.push(c.to_owned());
    }
    let mut feeds = Vec::new();
    for (i, f) in req.feeds.iter().enumerate() {
        let ok = f.len() <= 2000
            && reqwest::Url::parse(f.trim())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(ApiError::invalid_field(
                &format!("feeds[{i}]"),
                "an http(s) URL of at most 2000 characters",
            ));
        }
        if !allow_private
            && !reqwest::Url::parse(f.trim()).is_ok_and(|u| crate::market::public_host(&u))
        {
            return Err(ApiError::invalid_field(
                &format!("feeds[{i}]"),
                "a private or loopback address cannot be polled",
            ));
        }
        feeds.push(f.trim().to_owned());
    }
    let mut subreddits = Vec::new();
    for (i, s) in req.subreddits.iter().enumerate() {
        let s = s.trim().trim_start_matches("r/");
        if !crate::market::reddit::valid_subreddit(s) {
            return Err(ApiError::invalid_field(
                &format!("subreddits[{i}]"),
                "a subreddit name: 2 to 21 letters, digits or _",
            ));
        }
        subreddits.push(s.to_owned());
    }
    for v in [&mut competitors, &mut feeds, &mut subreddits] {
        v.sort();
        v.dedup();
    }
    Ok(Tracking {
        user_id: caller.user_id.clone(),
        keyword,
        competitors,
        feeds,
        subreddits,
        created_at_ms: chrono::Utc::now().timestamp_millis(),
    })
}

/// Tracks a keyword with its competitors, feeds and subreddits (replacing the
/// lists when it is tracked already); a first collection of its feeds starts.
#[utoipa::path(
    tag = "market",
    request_body = TrackRequest,
    responses(
        (status = 201, description = "Tracked: `{tracking, collection_id}`", body = Object),
        (status = 200, description = "Updated: `{tracking, collection_id}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "Too many keywords", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/market/keywords")]
async fn track(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<TrackRequest>,
) -> Result<HttpResponse, ApiError> {
    let t = tracking(
        &caller,
        body.into_inner(),
        state.settings.market.allow_private_feeds,
    )?;
    let store = state.db.http()?;
    let mine = store.tracked(&caller.user_id).await?;
    if mine.len() >= MAX_KEYWORDS && !mine.iter().any(|m| m.keyword == t.keyword) {
        return Err(ApiError::conflict(format!(
            "at most {MAX_KEYWORDS} keywords per user"
        )));
    }
    let new = store.track(&t).await?;
    let mut collection_id = None;
    if !t.feeds.is_empty() {
        let data = MarketDataCollectionStarted {
            collection_id: Ulid::generate().to_string(),
            data_source: DataSource::RssFeeds,
            keywords: vec![t.keyword.clone()],
            user_ids: vec![caller.user_id.clone()],
        };
        state
            .publisher
            .publish_typed(&data, |e| e.with_user(caller.user_id.as_str()))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        collection_id = Some(data.collection_id);
    }
    let body = json!({"tracking": t, "collection_id": collection_id});
    Ok(if new {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// What the caller tracks.
#[utoipa::path(
    tag = "market",
    responses(
        (status = 200, description = "`{keywords: [tracking]}`", body = Object),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/market/keywords")]
async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let rows = state.db.http()?.tracked(&caller.user_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "keywords": rows })))
}

/// Stops tracking a keyword.
#[utoipa::path(
    tag = "market",
    params(("keyword" = String, Path, description = "The keyword, as listed")),
    responses(
        (status = 204, description = "No longer tracked"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Not tracked by the caller", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[delete("/market/keywords/{keyword}")]
async fn untrack(
    state: web::Data<AppState>,
    caller: Caller,
    keyword: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let k = keyword.trim().to_lowercase();
    if state.db.http()?.untrack(&caller.user_id, &k).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("`{k}` is not tracked")))
    }
}

/// Reads the body up to [`MAX_IMPORT_BYTES`].
async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("invalid_body", "unreadable body"))?;
        if body.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::too_large(format!(
                "a series import is at most {MAX_IMPORT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Imports a series: a Google Trends `multiTimeline.csv` (`text/csv`; one series
/// per term column, scale `relative`) or JSON `{keyword, scale?, points: [{t,
/// value}]}`; each is analysed at once.
#[utoipa::path(
    tag = "market",
    request_body(content = JsonSeries, description = "JSON, or a Trends CSV export as text/csv"),
    responses(
        (status = 201, description = "`{series: [{series_id, keyword, scale, points, trend}]}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "The caller does not track this keyword", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/market/series")]
async fn import(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ctype = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = read_body(payload).await?;
    let parsed: Vec<Parsed> = if ctype.starts_with("application/json") {
        let s: JsonSeries = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
        vec![series::parse_json(s).map_err(|e| ApiError::bad_request("invalid_body", e.0))?]
    } else if ctype.starts_with("text/csv") || ctype.starts_with("text/plain") {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("invalid_body", "the CSV is not UTF-8"))?;
        series::parse_trends_csv(text).map_err(|e| ApiError::bad_request("invalid_body", e.0))?
    } else {
        return Err(ApiError::bad_request(
            "unsupported_media_type",
            "send application/json or text/csv (a Google Trends export)",
        ));
    };
    let store = state.db.http()?;
    if !caller.admin {
        let mine = store.tracked(&caller.user_id).await?;
        if let Some(p) = parsed
            .iter()
            .find(|p| !mine.iter().any(|m| m.keyword == p.keyword))
        {
            return Err(ApiError::forbidden(format!(
                "track `{}` first (POST /api/v1/market/keywords)",
                p.keyword
            )));
        }
    }
    let now = chrono::Utc::now().timestamp_millis();
    let th = crate::market::trend::Thresholds {
        min_relative_change: state.settings.market.min_relative_change,
    };
    let mut out = Vec::new();
    for p in parsed {
        let s = Series {
            series_id: Ulid::generate().to_string(),
            keyword: p.keyword.clone(),
            origin: p.origin.clone(),
            scale: p.scale.clone(),
            step_ms: p.step_ms,
            created_at_ms: now,
        };
        store.save_series(&s, &p.points).await?;
        crate::market::monitor::analyze_keyword(store, &state.publisher, &s.keyword, th)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let trend = store.latest_trend(&s.keyword).await?;
        out.push(json!({
            "series_id": s.series_id,
            "keyword": s.keyword,
            "scale": s.scale,
            "origin": s.origin,
            "points": p.points.len(),
            "trend": trend.filter(|t| t.series_id == s.series_id).map(|t| json!({
                "trend_id": t.trend_id, "direction": t.direction, "confidence": t.confidence,
            })),
        }));
    }
    Ok(HttpResponse::Created().json(json!({ "series": out })))
}

/// `GET /market/trends` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct TrendsQuery {
    /// One keyword; without it, every keyword the caller tracks.
    keyword: Option<String>,
}

/// The latest analysis per keyword: direction, slope, p-value, confidence, the
/// series used.
#[utoipa::path(
    tag = "market",
    params(TrendsQuery),
    responses(
        (status = 200, description = "`{trends: [{trend_id, keyword, direction, confidence, analysis, created_at}]}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No analysis of this keyword yet", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/market/trends")]
async fn trends(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<TrendsQuery>,
) -> Result<HttpResponse, ApiError> {
    let store = state.db.http()?;
    let rows = match &q.keyword {
        Some(k) => {
            let k = series::keyword(k).map_err(|e| ApiError::bad_request("invalid_query", e.0))?;
            vec![
                store
                    .latest_trend(&k)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("no analysis of `{k}` yet")))?,
            ]
        }
        None => store.user_trends(&caller.user_id).await?,
    };
    let trends: Vec<_> = rows
        .into_iter()
        .map(|t| {
            json!({
                "trend_id": t.trend_id,
                "keyword": t.keyword,
                "direction": t.direction,
                "confidence": t.confidence,
                "series_id": t.series_id,
                "analysis": t.analysis,
                "created_at": chrono::DateTime::from_timestamp_millis(t.created_at_ms)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "trends": trends })))
}
