//! A user's preferences: `GET` reads the preferences projection, `PUT` publishes
//! `user.preferences.updated` (the projection applies it shortly after, so a `GET`
//! right after a `PUT` may still show the old values).
//!
//! A user reaches only their own preferences; admins reach anyone's. `old_values`
//! of the event are what the projection holds when the `PUT` arrives.

use actix_web::{HttpResponse, get, put, web};
use serde_json::{Map, Value, json};
use strategist_actors::{EventType, PublishError};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Body, Caller, ErrorBody};
use crate::events::user::UserPreferencesUpdated;

/// The most fields one `PUT` may set.
const MAX_FIELDS: usize = 100;
/// The longest field name.
const MAX_NAME: usize = 100;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(show).service(update);
}

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The user's current preferences from the projection.
#[utoipa::path(
    tag = "preferences",
    params(("user_id" = String, Path, description = "The user; non-admins only themselves")),
    responses(
        (status = 200, description = "`{user_id, preferences, embedding_model, last_event_id, updated_at}`", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No preferences recorded for this user", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/users/{user_id}/preferences")]
async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    user_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.may_act_for(&user_id)?;
    let row = state
        .db
        .http()?
        .preferences(&user_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no preferences for user `{}`", user_id.as_str()))
        })?;
    let updated_at = chrono::DateTime::from_timestamp_millis(row.updated_at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    Ok(HttpResponse::Ok().json(json!({
        "user_id": row.user_id,
        "preferences": object(&row.preferences),
        "embedding_model": row.embedding_model,
        "last_event_id": row.last_event_id,
        "updated_at": updated_at,
    })))
}

/// Sets the given preference fields (a JSON object of field → value) by
/// publishing `user.preferences.updated`.
#[utoipa::path(
    tag = "preferences",
    params(("user_id" = String, Path, description = "The user; non-admins only themselves")),
    request_body(content = Object, description = "Field → new value, e.g. `{\"theme\": \"dark\"}`"),
    responses(
        (status = 202, description = "`{event_id, entry_id}` of the published event", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[put("/users/{user_id}/preferences")]
async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    user_id: web::Path<String>,
    body: Body<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    caller.may_act_for(&user_id)?;
    let new_values = body.into_inner();
    if new_values.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "give at least one preference field, e.g. {\"theme\": \"dark\"}",
        ));
    }
    if new_values.len() > MAX_FIELDS {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("at most {MAX_FIELDS} fields at a time"),
        ));
    }
    if let Some(bad) = new_values
        .keys()
        .find(|k| k.trim().is_empty() || k.len() > MAX_NAME)
    {
        return Err(ApiError::invalid_field(
            bad,
            format!("a field name must be 1 to {MAX_NAME} bytes"),
        ));
    }
    let current = state
        .db
        .http()?
        .preferences(&user_id)
        .await?
        .map(|r| object(&r.preferences))
        .unwrap_or_default();
    let old_values: Map<String, Value> = new_values
        .keys()
        .filter_map(|k| current.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    let data = UserPreferencesUpdated {
        user_id: user_id.to_string(),
        changed_fields: new_values.keys().cloned().collect(),
        old_values,
        new_values,
    };
    let published = state
        .publisher
        .publish_typed(&data, |e| e.with_user(user_id.as_str()))
        .await
        .map_err(|e| match e {
            PublishError::Invalid(e) => ApiError::bad_request("invalid_event", e.to_string()),
            PublishError::Redis(e) => ApiError::from(e),
            other => ApiError::unavailable(other.to_string()),
        })?;
    Ok(HttpResponse::Accepted().json(json!({
        "event_id": published.event_id,
        "entry_id": published.entry_id,
        "type": UserPreferencesUpdated::TYPE,
    })))
}
