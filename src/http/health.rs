//! `/healthz` (the process lives) and `/readyz` (Redis, the database and every
//! pool are up), at the root and without a token, for load balancers and probes.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use super::AppState;

/// Liveness: 200 while the process lives.
#[utoipa::path(tag = "health", responses((status = 200, body = Object)))]
#[get("/healthz")]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 while Redis, the database and every pool are up; 503 naming
/// what is not.
#[utoipa::path(tag = "health", responses((status = 200, body = Object), (status = 503, body = super::ErrorBody)))]
#[get("/readyz")]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut not_ready = state.health.not_ready();
    let mut conn = state.redis.clone();
    let ping = tokio::time::timeout(
        Duration::from_secs(1),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    match ping {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => not_ready.insert(0, ("redis".into(), e.to_string())),
        Err(_) => not_ready.insert(0, ("redis".into(), "no answer within 1 s".into())),
    }
    // A database the health board already reports down needs no second ping.
    let db_known_down = not_ready
        .iter()
        .any(|(part, _)| part == crate::database::PART);
    if let Some(store) = state.db.try_get().filter(|_| !db_known_down) {
        match tokio::time::timeout(Duration::from_secs(1), store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => not_ready.push(("database".into(), e.to_string())),
            Err(_) => not_ready.push(("database".into(), "no answer within 1 s".into())),
        }
    }
    if not_ready.is_empty() {
        return HttpResponse::Ok().json(json!({"status": "ready"}));
    }
    let checks: serde_json::Map<String, serde_json::Value> = not_ready
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let message = not_ready
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ");
    HttpResponse::ServiceUnavailable().json(json!({
        "error": {"code": "not_ready", "message": message},
        "checks": checks,
    }))
}
