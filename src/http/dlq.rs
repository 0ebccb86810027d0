//! The dead-letter admin over HTTP (admin only): listing and reading come from the
//! `dead_letters` table, the durable record the mirror fills from the capped Redis
//! dead-letter streams; reprocessing and purging act on Redis through
//! [`strategist_actors::DeadLetters`], then mark the row.
//!
//! Before acting on a dead letter, its stream is mirrored once more, so that a dead
//! letter that arrived since the last mirror run has its row, and its row is marked.
//! What the CLI or an auto-resolution rule does is marked by the mirror from the
//! audit trail. A row stays `open` when Redis trimmed its entry before anyone
//! handled it: reprocessing it is refused (409; its fields are still in the
//! table), and purging it just marks the row.
//!
//! Ids are `<stream>:<dead-letter entry id>` (`ai.events:1732881600000-0`), and
//! `<stream>:<partition>:<entry id>` on a partitioned stream; in a path they may be
//! sent as they are or URL-encoded (`ai.events%3A1732881600000-0`).

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use serde_json::{Value, json};
use strategist_actors::{DeadLetterError, DeadLetterReason};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Body, Caller, ErrorBody};
use crate::dead_letter_mirror;
use crate::events::streams;
use crate::store::Store;
use crate::store::dead_letters::{DeadLetterQuery, DeadLetterStatus};
use crate::store::entities::dead_letter;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    // The literal `/dlq/reprocess` before `/dlq/{id}/...`, so it is never an id.
    cfg.service(reprocess_matching)
        .service(list)
        .service(show)
        .service(reprocess)
        .service(purge);
}

fn row_json(m: dead_letter::Model) -> Value {
    let fields: Value = serde_json::from_str(&m.fields).unwrap_or_else(|_| json!({}));
    let updated_at = chrono::DateTime::from_timestamp_millis(m.updated_at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    json!({
        "id": m.id,
        "stream": m.stream,
        "event_id": m.event_id,
        "type": m.event_type,
        "reason": m.reason,
        "error": m.error,
        "group": m.group_name,
        "attempts": m.attempts,
        "original_id": m.original_id,
        "at": m.at,
        "reprocessed": m.reprocessed,
        "fields": fields,
        "status": m.status,
        "updated_at": updated_at,
    })
}

fn check_stream(field: &str, s: &str) -> Result<(), ApiError> {
    if streams::ALL.contains(&s) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "{field}: unknown stream `{s}` (one of {})",
                streams::ALL.join(", ")
            ),
        ))
    }
}

fn check_reason(r: &str) -> Result<(), ApiError> {
    DeadLetterReason::parse(r).map(|_| ()).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "reason: unknown `{r}` (one of handler_failed, invalid_event, unknown_version, \
                 max_deliveries, panicked, timeout)"
            ),
        )
    })
}

/// The Redis stream of a well-formed dead-letter id (on a partitioned stream, the
/// partition's: `user.events:2` of `user.events:2:1732881600000-0`), or a 400.
fn stream_of_id<'a>(state: &AppState, id: &'a str) -> Result<&'a str, ApiError> {
    state.dead_letters.stream_of_id(id).map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!(
                "`{id}` is not a dead-letter id (expected <stream>:<entry id>, e.g. ai.events:1732881600000-0, or <stream>:<partition>:<entry id> on a partitioned stream)"
            ),
        )
    })
}

fn dead_letter_error(e: DeadLetterError) -> ApiError {
    match e {
        DeadLetterError::BadId(_) => ApiError::bad_request("invalid_id", e.to_string()),
        DeadLetterError::NotFound(_) => ApiError::not_found(e.to_string()),
        DeadLetterError::Redis(e) => ApiError::from(e),
    }
}

fn mirror_error(e: dead_letter_mirror::MirrorError) -> ApiError {
    match e {
        dead_letter_mirror::MirrorError::Redis(e) => dead_letter_error(e),
        dead_letter_mirror::MirrorError::Store(e) => ApiError::from(e),
    }
}

/// The row of `id`, mirroring its stream first when it has none yet; 404 if
/// neither the table nor Redis knows it.
async fn find(state: &AppState, store: &Store, id: &str) -> Result<dead_letter::Model, ApiError> {
    let stream = stream_of_id(state, id)?;
    if let Some(row) = store.dead_letter(id).await? {
        return Ok(row);
    }
    dead_letter_mirror::sync_stream(store, &state.dead_letters, stream)
        .await
        .map_err(mirror_error)?;
    store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no dead letter `{id}`")))
}

fn not_open(row: &dead_letter::Model) -> ApiError {
    ApiError::conflict(format!(
        "dead letter `{}` is already {}",
        row.id, row.status
    ))
}

/// Query of `GET /dlq`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DlqQuery {
    /// Only this stream, e.g. `ai.events`.
    stream: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only this reason (`handler_failed`, `invalid_event`, ...).
    reason: Option<String>,
    /// Only this consumer group.
    group: Option<String>,
    /// Only this status: `open`, `reprocessed` or `purged`.
    status: Option<String>,
    /// The last id of the previous page.
    after: Option<String>,
    /// Page size, 1..=1000 (default 100).
    limit: Option<u64>,
}

/// Dead letters from the database, oldest first, paged by `after`.
#[utoipa::path(
    tag = "dead letters",
    params(DlqQuery),
    responses(
        (status = 200, description = "`{dead_letters, next_after}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/dlq")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<DlqQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let q = q.into_inner();
    if let Some(s) = &q.stream {
        check_stream("stream", s)?;
    }
    if let Some(r) = &q.reason {
        check_reason(r)?;
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(DeadLetterStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("status: unknown `{s}` (one of open, reprocessed, purged)"),
            )
        })?),
    };
    if let Some(a) = &q.after {
        stream_of_id(&state, a)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("after: {}", e.message)))?;
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be between 1 and 1000",
        ));
    }
    let page = state
        .db
        .http()?
        .dead_letters(&DeadLetterQuery {
            stream: q.stream,
            event_type: q.event_type,
            reason: q.reason,
            group: q.group,
            status,
            after: q.after,
            limit,
        })
        .await?;
    let next = (page.len() as u64 == limit)
        .then(|| page.last().map(|d| d.id.clone()))
        .flatten();
    let rows: Vec<Value> = page.into_iter().map(row_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "dead_letters": rows, "next_after": next })))
}

/// One dead letter, with its original fields and status.
#[utoipa::path(
    tag = "dead letters",
    params(("id" = String, Path, description = "`<stream>:<entry id>`, e.g. `ai.events:1732881600000-0` (may be URL-encoded)")),
    responses(
        (status = 200, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/dlq/{id}")]
async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let store = state.db.http()?;
    Ok(HttpResponse::Ok().json(row_json(find(&state, store, &id).await?)))
}

/// Sends one dead letter back to the consumer group that failed it (and no other).
#[utoipa::path(
    tag = "dead letters",
    params(("id" = String, Path, description = "`<stream>:<entry id>` (may be URL-encoded)")),
    responses(
        (status = 200, description = "`{id, status, redelivered_as}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already reprocessed or purged, or no longer in Redis", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/dlq/{id}/reprocess")]
async fn reprocess(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let store = state.db.http()?;
    let row = find(&state, store, &id).await?;
    if row.status != DeadLetterStatus::Open.as_str() {
        return Err(not_open(&row));
    }
    let note = format!("api, by {}", caller.user_id);
    match state.dead_letters.reprocess(&row.id, &note).await {
        Ok(entry) => {
            store
                .mark_dead_letter(&row.id, DeadLetterStatus::Reprocessed)
                .await?;
            Ok(HttpResponse::Ok().json(json!({
                "id": row.id, "status": "reprocessed", "redelivered_as": entry,
            })))
        }
        Err(DeadLetterError::NotFound(_)) => {
            // Another request may have just reprocessed it.
            match store.dead_letter(&row.id).await? {
                Some(now) if now.status != DeadLetterStatus::Open.as_str() => Err(not_open(&now)),
                _ => Err(ApiError::conflict(format!(
                    "dead letter `{}` is no longer in Redis (trimmed, or handled elsewhere a \
                     moment ago); its fields are kept in GET /api/v1/dlq/{{id}}",
                    row.id
                ))),
            }
        }
        Err(e) => Err(dead_letter_error(e)),
    }
}

/// `POST /dlq/reprocess`: which open dead letters to send back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReprocessFilter {
    /// Only this stream.
    #[serde(default)]
    stream: Option<String>,
    /// Only this event type.
    #[serde(default, rename = "type")]
    #[schema(rename = "type")]
    event_type: Option<String>,
    /// Only this reason.
    #[serde(default)]
    reason: Option<String>,
    /// Only this group.
    #[serde(default)]
    group: Option<String>,
}

/// Sends every open dead letter matching the filter back to the group that failed
/// it. At least one filter field is required, so an empty body cannot replay all.
#[utoipa::path(
    tag = "dead letters",
    request_body = ReprocessFilter,
    responses(
        (status = 200, description = "`{reprocessed, skipped}`: skipped ones were no longer in Redis", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/dlq/reprocess")]
async fn reprocess_matching(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<ReprocessFilter>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let f = body.into_inner();
    if f.stream.is_none() && f.event_type.is_none() && f.reason.is_none() && f.group.is_none() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "give at least one of stream, type, reason, group",
        ));
    }
    if let Some(s) = &f.stream {
        check_stream("stream", s).map_err(|e| ApiError::bad_request("invalid_body", e.message))?;
    }
    if let Some(r) = &f.reason {
        check_reason(r).map_err(|e| ApiError::bad_request("invalid_body", e.message))?;
    }
    let store = state.db.http()?;
    let to_sync = match &f.stream {
        Some(s) => vec![s.as_str()],
        None => streams::ALL.to_vec(),
    };
    for s in to_sync {
        dead_letter_mirror::sync_stream(store, &state.dead_letters, s)
            .await
            .map_err(mirror_error)?;
    }
    let note = format!("api, by {}", caller.user_id);
    let mut query = DeadLetterQuery {
        stream: f.stream,
        event_type: f.event_type,
        reason: f.reason,
        group: f.group,
        status: Some(DeadLetterStatus::Open),
        after: None,
        limit: 1000,
    };
    let (mut done, mut skipped) = (0u64, 0u64);
    loop {
        let page = store.dead_letters(&query).await?;
        for row in &page {
            match state.dead_letters.reprocess(&row.id, &note).await {
                Ok(_) => {
                    store
                        .mark_dead_letter(&row.id, DeadLetterStatus::Reprocessed)
                        .await?;
                    done += 1;
                }
                Err(DeadLetterError::NotFound(_)) => skipped += 1,
                Err(e) => return Err(dead_letter_error(e)),
            }
        }
        if page.len() < 1000 {
            break;
        }
        query.after = page.last().map(|r| r.id.clone());
    }
    Ok(HttpResponse::Ok().json(json!({ "reprocessed": done, "skipped": skipped })))
}

/// Removes one dead letter from Redis (recorded in its audit stream) and marks its
/// row purged; the row stays as the record.
#[utoipa::path(
    tag = "dead letters",
    params(("id" = String, Path, description = "`<stream>:<entry id>` (may be URL-encoded)")),
    responses(
        (status = 200, description = "`{id, status}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already reprocessed or purged", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[delete("/dlq/{id}")]
async fn purge(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let store = state.db.http()?;
    let row = find(&state, store, &id).await?;
    if row.status != DeadLetterStatus::Open.as_str() {
        return Err(not_open(&row));
    }
    let note = format!("api, by {}", caller.user_id);
    match state.dead_letters.purge(&row.id, &note).await {
        // Gone from Redis already: the operator still wants it closed.
        Ok(()) | Err(DeadLetterError::NotFound(_)) => {}
        Err(e) => return Err(dead_letter_error(e)),
    }
    let marked = store
        .mark_dead_letter(&row.id, DeadLetterStatus::Purged)
        .await?;
    if !marked && let Some(now) = store.dead_letter(&row.id).await? {
        return Err(not_open(&now));
    }
    Ok(HttpResponse::Ok().json(json!({ "id": row.id, "status": "purged" })))
}
