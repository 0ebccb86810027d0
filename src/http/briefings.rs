//! A user's briefings and briefing schedule: `GET /briefings`, `GET /briefings/{id}`,
//! `PUT /briefings/schedule`.
//!
//! A caller reaches only their own briefings: another user's id is a 404, the same
//! answer as an id that does not exist, so ids cannot be probed.

use actix_web::{HttpResponse, get, put, web};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Body, Caller, ErrorBody};
use crate::briefings::{next_run, period_name};
use crate::events::notification::BriefingPeriod;
use crate::store::entities::{briefing, briefing_schedule};

/// The most briefings one list returns.
const LIST_LIMIT: u64 = 100;
/// The longest contextual core id.
const MAX_ID: usize = 200;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(set_schedule).service(show);
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn briefing_json(b: &briefing::Model) -> Value {
    json!({
        "id": b.id,
        "user_id": b.user_id,
        "period": b.period,
        "period_start": rfc3339(b.period_start_ms),
        "period_end": rfc3339(b.period_end_ms),
        "contextual_core_id": b.contextual_core_id,
        "content": serde_json::from_str::<Value>(&b.content).unwrap_or(Value::Null),
        "model_used": b.model_used,
        "created_at": rfc3339(b.created_at_ms),
    })
}

fn schedule_json(s: &briefing_schedule::Model) -> Value {
    json!({
        "user_id": s.user_id,
        "period": s.period,
        "time_zone": s.time_zone,
        "contextual_core_id": s.contextual_core_id,
        "next_run": rfc3339(s.next_run_ms),
    })
}

/// The caller's briefings, newest period first, and their schedule.
#[utoipa::path(
    tag = "briefings",
    responses(
        (status = 200, description = "`{briefings: [...], schedule}`", body = Object),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/briefings")]
async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let store = state.db.http()?;
    let rows = store.briefings_of(&caller.user_id, LIST_LIMIT).await?;
    let schedule = store.briefing_schedule(&caller.user_id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "briefings": rows.iter().map(briefing_json).collect::<Vec<_>>(),
        "schedule": schedule.as_ref().map(schedule_json),
    })))
}

/// One of the caller's briefings.
#[utoipa::path(
    tag = "briefings",
    params(("id" = String, Path, description = "The briefing")),
    responses(
        (status = 200, description = "The briefing: `content` holds top_signal, trends, competitor_moves, notable_items, suggested_actions, text", body = Object),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No briefing of the caller with this id", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/briefings/{id}")]
async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let b = state
        .db
        .http()?
        .briefing(&id)
        .await?
        .filter(|b| b.user_id == caller.user_id)
        .ok_or_else(|| ApiError::not_found("no such briefing"))?;
    Ok(HttpResponse::Ok().json(briefing_json(&b)))
}

/// `PUT /briefings/schedule`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleRequest {
    /// `weekly` (Mondays) or `monthly` (the 1st), at the configured local time.
    period: String,
    /// The user's IANA time zone, e.g. `Europe/Berlin`.
    time_zone: String,
    /// The contextual core the briefings are about.
    contextual_core_id: String,
}

/// Sets the caller's briefing schedule; answers it with its next run.
#[utoipa::path(
    tag = "briefings",
    request_body = ScheduleRequest,
    responses(
        (status = 200, description = "`{user_id, period, time_zone, contextual_core_id, next_run}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[put("/briefings/schedule")]
async fn set_schedule(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<ScheduleRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let period = match req.period.as_str() {
        "weekly" => BriefingPeriod::Weekly,
        "monthly" => BriefingPeriod::Monthly,
        _ => {
            return Err(ApiError::invalid_field(
                "period",
                "must be weekly or monthly",
            ));
        }
    };
    let core = req.contextual_core_id.trim();
    if core.is_empty() || core.len() > MAX_ID {
        return Err(ApiError::invalid_field(
            "contextual_core_id",
            format!("must be 1 to {MAX_ID} bytes"),
        ));
    }
    let now = chrono::Utc::now();
    let next =
        next_run(&state.settings.briefings, period, &req.time_zone, now).map_err(|e| match e {
            crate::scheduler::calendar::CalendarError::Zone(_) => {
                ApiError::invalid_field("time_zone", e)
            }
            other => ApiError::internal(other),
        })?;
    let row = briefing_schedule::Model {
        user_id: caller.user_id.clone(),
        period: period_name(period).to_owned(),
        time_zone: req.time_zone.clone(),
        contextual_core_id: core.to_owned(),
        next_run_ms: next.timestamp_millis(),
        updated_at_ms: now.timestamp_millis(),
    };
    state.db.http()?.set_briefing_schedule(row.clone()).await?;
    Ok(HttpResponse::Ok().json(schedule_json(&row)))
}
