//! The HTTP server: liveness and readiness now; the API of the contract grows here.
//!
//! Errors are `{"error": {"code", "message"}}` with a fitting status.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use redis::aio::ConnectionManager;
use serde_json::json;
use strategist_actors::Health;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Readiness board of the engine.
    pub health: Health,
    /// The shared Redis connection.
    pub redis: ConnectionManager,
    /// The database (may still be opening).
    pub db: crate::database::Db,
}

/// Binds `addr` and starts serving; returns the bound address and a handle to stop
/// the server. Signals are not handled here: the caller drains the engine first.
pub fn start(addr: &str, state: AppState) -> std::io::Result<(std::net::SocketAddr, ServerHandle)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)?;
    let bound = server.addrs().first().copied().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address bound")
    })?;
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((bound, handle))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
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
