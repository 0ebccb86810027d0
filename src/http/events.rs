//! `GET /events` reads the event store; `POST /events` publishes one validated event.
//!
//! Ownership: a non-admin publishes only the types `http.user_publishable_types`
//! lists, and reads and publishes only events about themselves. That
//! means the envelope's `user_id` and, when the payload names one, the payload's
//! `user_id` too: projections read the payload's, so checking only the envelope
//! would let a user write another user's preferences.
//!
//! Idempotency: an `Idempotency-Key` header binds the key (per calling user, for
//! 24 h) to one event id, kept in Redis with `SET NX EX`, together with a digest of
//! the request; the event is then published through the de-duplicating publisher
//! under that id, so a retry answers the first event's id and entry id with
//! `duplicate: true` and adds nothing, even when two retries race. The same key with
//! a different request is a 409.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strategist_actors::{Envelope, PublishError};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Body, Caller, ErrorBody};
use crate::store::entities::event;
use crate::store::event_store::EventQuery;

/// How long an idempotency key holds, and the de-duplication window behind it.
const IDEMPOTENCY_MS: u64 = 86_400_000;
/// The longest idempotency key accepted.
const MAX_KEY: usize = 255;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(publish);
}

/// Query of `GET /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// Whose events; non-admins may name only themselves (and are implied).
    user_id: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only this correlation id.
    correlation_id: Option<String>,
    /// The last event id of the previous page.
    after: Option<String>,
    /// Page size, 1..=1000 (default 100).
    limit: Option<u64>,
}

/// One stored event as the API shows it: the wire fields, `data` and `metadata`
/// as JSON, plus where it was in Redis.
fn event_json(m: event::Model) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::String(s.into()));
    let timestamp = chrono::DateTime::from_timestamp_millis(m.timestamp_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    json!({
        "id": m.id,
        "type": m.event_type,
        "version": m.version,
        "timestamp": timestamp,
        "stream": m.stream,
        "entry_id": m.entry_id,
        "user_id": m.user_id,
        "correlation_id": m.correlation_id,
        "causation_id": m.causation_id,
        "data": parse(&m.data),
        "metadata": m.metadata.as_deref().map(parse),
    })
}

/// Events from the event store in stream order, paged by `after`.
#[utoipa::path(
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "`{events, next_after}`; `next_after` is null on the last page", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/events")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let user_id = match q.user_id {
        Some(u) => {
            caller.may_act_for(&u)?;
            Some(u)
        }
        None if caller.admin => None,
        None => Some(caller.user_id.clone()),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be between 1 and 1000",
        ));
    }
    let query = EventQuery {
        user_id,
        event_type: q.event_type,
        correlation_id: q.correlation_id,
        after: q.after,
        limit,
        ..EventQuery::default()
    };
    let page = state.db.http()?.events(&query).await?;
    let next = (page.len() as u64 == limit)
        .then(|| page.last().map(|e| e.id.clone()))
        .flatten();
    let events: Vec<Value> = page.into_iter().map(event_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "events": events, "next_after": next })))
}

/// `POST /events`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishBody {
    /// A type of the catalog, e.g. `user.login`; its stream follows from it.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    event_type: String,
    /// The payload, checked against the type's schema.
    data: Value,
    /// The user the event concerns; non-admins may name only themselves (the
    /// default).
    #[serde(default)]
    user_id: Option<String>,
    /// Ties the events of one request or conversation together.
    #[serde(default)]
    correlation_id: Option<String>,
    /// The id of the event that caused this one.
    #[serde(default)]
    causation_id: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
}

/// Reads and checks the `Idempotency-Key` header.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_header",
            format!("Idempotency-Key: must be 1 to {MAX_KEY} visible ASCII characters"),
        )
    };
    let key = v.to_str().map_err(|_| bad())?.trim();
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The event id bound to `key` for `caller`: a new one on first use, the first
/// one after; 409 when the key was used for a different request.
async fn bound_event_id(
    state: &AppState,
    caller: &Caller,
    key: &str,
    fingerprint: &str,
) -> Result<Ulid, ApiError> {
    let redis_key = format!(
        "{}idempotency:{}",
        state.publisher.keys().prefix(),
        sha256_hex(&[caller.user_id.as_bytes(), key.as_bytes()])
    );
    let mut conn = state.redis.clone();
    // Twice: the binding may expire between a failed SET and the GET.
    for _ in 0..2 {
        let fresh = Ulid::generate();
        let set: Option<String> = redis::cmd("SET")
            .arg(&redis_key)
            .arg(format!("{fresh} {fingerprint}"))
            .arg("NX")
            .arg("PX")
            .arg(IDEMPOTENCY_MS)
            .query_async(&mut conn)
            .await?;
        if set.is_some() {
            return Ok(fresh);
        }
        let bound: Option<String> = redis::cmd("GET")
            .arg(&redis_key)
            .query_async(&mut conn)
            .await?;
        let Some(bound) = bound else { continue };
        let (id, fp) = bound.split_once(' ').unwrap_or((&bound, ""));
        if fp != fingerprint {
            return Err(ApiError::conflict(
                "this Idempotency-Key was used for a different request in the last 24 h",
            ));
        }
        return id
            .parse()
            .map_err(|e| ApiError::internal(format!("idempotency binding {bound:?}: {e}")));
    }
    Err(ApiError::unavailable(
        "the Idempotency-Key could not be bound; try again",
    ))
}

/// Publishes one event, checked against the catalog, to its type's stream.
#[utoipa::path(
    tag = "events",
    request_body = PublishBody,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes the publish idempotent for 24 h: a retry answers the first event with `duplicate: true`")),
    responses(
        (status = 202, description = "`{event_id, entry_id, stream, duplicate}`", body = Object),
        (status = 400, description = "Unknown type, or a payload off its schema", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used for another request", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/events")]
async fn publish(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<PublishBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let key = idempotency_key(&req)?;
    let user_id = match b.user_id {
        Some(u) => {
            caller.may_act_for(&u)?;
            Some(u)
        }
        None if caller.admin => None,
        None => Some(caller.user_id.clone()),
    };
    if let Some(named) = b.data.get("user_id").and_then(Value::as_str) {
        caller.may_act_for(named)?;
    }
    let info = state
        .publisher
        .catalog()
        .get(&b.event_type)
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_event_type",
                format!("type: unknown event type `{}`", b.event_type),
            )
        })?;
    if !caller.admin
        && !state
            .settings
            .http
            .user_publishable_types
            .iter()
            .any(|t| t == &b.event_type)
    {
        // Everything else is published by the system itself (requests go through
        // their own routes, with their checks and limits; replies, alerts and
        // market events only by workers).
        return Err(ApiError::forbidden(format!(
            "only admins may publish {}; users may publish: {}",
            b.event_type,
            state.settings.http.user_publishable_types.join(", ")
        )));
    }
    let stream = info.stream;
    let mut env = Envelope::new(b.event_type, info.version, b.data);
    env.user_id = user_id;
    env.correlation_id = b.correlation_id;
    env.causation_id = b.causation_id;
    env.metadata = b.metadata;
    // Checked before any key is bound, so a refused event binds nothing.
    state
        .publisher
        .catalog()
        .check_publish(stream, &env)
        .map_err(|e| ApiError::bad_request("invalid_event", e.to_string()))?;
    let published = match key {
        None => state.publisher.publish(stream, &env).await,
        Some(key) => {
            let request = json!({
                "type": env.event_type, "data": env.data, "user_id": env.user_id,
                "correlation_id": env.correlation_id, "causation_id": env.causation_id,
                "metadata": env.metadata,
            });
            let fingerprint = sha256_hex(&[request.to_string().as_bytes()]);
            env.id = bound_event_id(&state, &caller, &key, &fingerprint).await?;
            state
                .publisher
                .clone()
                .with_dedupe_window_ms(IDEMPOTENCY_MS)
                .publish(stream, &env)
                .await
        }
    }
    .map_err(|e| match e {
        PublishError::Invalid(e) => ApiError::bad_request("invalid_event", e.to_string()),
        PublishError::Redis(e) => ApiError::from(e),
        other => ApiError::unavailable(other.to_string()),
    })?;
    Ok(HttpResponse::Accepted().json(published))
}
