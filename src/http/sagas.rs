//! `GET /sagas?status=&limit=` (admin): saga instances by status from the saga
//! store, for the web page's "sagas in flight" and for an operator with curl.
//!
//! The saga's `data` is not in the answer: it can be large and may name people
//! (it carries the start event's payload); `GET /files/{file_id}` shows a file's
//! saga to its owner.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use strategist_actors::SagaStatus;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::store::entities::saga;

/// The largest page.
const MAX_LIMIT: u64 = 500;
/// The page when `limit` is absent.
const DEFAULT_LIMIT: u64 = 100;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list);
}

/// Query of `GET /sagas`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SagaQuery {
    /// `running` (the default), `compensating`, `completed` or `failed`.
    status: Option<String>,
    /// How many, 1..=500 (default 100).
    limit: Option<u64>,
}

/// One saga instance as the admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SagaSummary {
    /// Its correlation id.
    id: String,
    /// The definition's name, e.g. `file-processing`.
    saga: String,
    /// running, compensating, completed or failed.
    status: String,
    /// The current step (while running) or the step that failed, from 0.
    step: i32,
    /// Attempts of the current step.
    attempts: i32,
    /// When the current step times out (RFC 3339); null when it is not waiting.
    deadline_at: Option<String>,
    /// The event id of the current step's request.
    request_id: Option<String>,
    /// Why it failed.
    error: Option<String>,
    /// Steps recorded so far (done, failed or compensated).
    history_len: usize,
    /// When it last changed (RFC 3339).
    updated_at: Option<String>,
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl From<saga::Model> for SagaSummary {
    fn from(m: saga::Model) -> Self {
        let history_len = serde_json::from_str::<Vec<serde_json::Value>>(&m.history)
            .map(|h| h.len())
            .unwrap_or(0);
        SagaSummary {
            deadline_at: (m.deadline_ms > 0)
                .then(|| rfc3339(m.deadline_ms))
                .flatten(),
            updated_at: rfc3339(m.updated_at_ms),
            id: m.id,
            saga: m.saga,
            status: m.status,
            step: m.step,
            attempts: m.attempts,
            request_id: m.request_id,
            error: m.error,
            history_len,
        }
    }
}

/// Answer of `GET /sagas`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SagaList {
    /// The sagas, the longest unchanged first.
    sagas: Vec<SagaSummary>,
}

/// Saga instances in one status, the longest unchanged first.
#[utoipa::path(
    tag = "admin",
    params(SagaQuery),
    responses(
        (status = 200, body = SagaList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/sagas")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<SagaQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let status = match q.status.as_deref() {
        None => SagaStatus::Running,
        Some(s) => SagaStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("status: unknown `{s}` (one of running, compensating, completed, failed)"),
            )
        })?,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let rows = state.db.http()?.sagas_by_status(status, limit).await?;
    Ok(HttpResponse::Ok().json(SagaList {
        sagas: rows.into_iter().map(SagaSummary::from).collect(),
    }))
}
