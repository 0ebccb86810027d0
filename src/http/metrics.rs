//! `GET /api/v1/metrics` (admin; the design's `EventPerformanceMetrics` as JSON) and
//! `GET /metrics` at the root (no token; Prometheus text for scrapers). Both are
//! made from one [`Report`] read at the moment of the request, so they agree.
//!
//! The Prometheus endpoint needs no token because scrapers rarely carry one; it
//! shows names of streams, groups and event types and numbers, never personal data.

use actix_web::{HttpResponse, get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::metrics::{QueueError, Report, prometheus};

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(json);
}

async fn report(state: &AppState) -> Result<Report, ApiError> {
    let mut conn = state.redis.clone();
    let mut report = Report::collect(&state.metrics, &mut conn, state.publisher.keys())
        .await
        .map_err(|e| match e {
            QueueError::Redis(e) => ApiError::from(e),
        })?;
    report.scaling = state.scaling.snapshot();
    Ok(report)
}

/// Per stream, group and event type: throughput per minute, processing time and
/// publish-to-handled latency (mean, p50, p95, p99 in ms over the last five
/// minutes), success and error rates, totals; per group (from Redis, the whole
/// system): queue depth, lag, pending, oldest pending age, in flight here, dead
/// letters per minute; this process's memory and CPU.
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, description = "`{window_seconds, events: [...], groups: [...], streams: [...], process}`", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/metrics")]
async fn json(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    Ok(HttpResponse::Ok().json(report(&state).await?.document()))
}

/// The same figures as Prometheus text (format 0.0.4), without a token.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 503, body = ErrorBody)
    )
)]
#[get("/metrics")]
pub(super) async fn prometheus_text(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = prometheus::encode(report(&state).await?).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::CONTENT_TYPE)
        .body(text))
}
