//! The HTTP API of the contract (`/api/v1/...`), health and Prometheus `/metrics` at
//! the root, the OpenAPI document of every route at `/api/openapi.json`, and the web
//! page at `/` (`page.rs`).
//!
//! Each file holds one resource; every handler is registered through
//! `utoipa_actix_web`, so a route cannot exist without being in the OpenAPI
//! document. Errors are always [`ApiError`]: `{"error": {"code", "message"}}`.
//! Handlers are thin: they check the caller and the input, then call the engine
//! (publish, request) or the store.

mod auth;
mod body;
mod briefings;
mod content;
mod dlq;
mod error;
mod events;
mod files;
mod health;
mod limits;
mod market;
mod metrics;
mod notifications;
mod openapi;
mod page;
mod preferences;
mod projections;
mod push;
mod sagas;
mod streams;

use std::sync::Arc;

use actix_web::{App, HttpServer, dev::ServerHandle, web};
use strategist_actors::Conn;
use strategist_actors::{DeadLetters, EngineMetrics, Health, Publisher, Replies};
use utoipa_actix_web::AppExt as _;

pub use auth::Caller;
pub use body::{Body, BodyLimit};
pub use error::{ApiError, ErrorBody};
pub use limits::RateLimits;

use crate::ai::{Providers, Templates};
use crate::auth::Tokens;
use crate::config::Settings;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Readiness board of the engine.
    pub health: Health,
    /// The shared Redis connection.
    pub redis: Conn,
    /// The database (may still be opening).
    pub db: crate::database::Db,
    /// Publishes validated events.
    pub publisher: Publisher,
    /// The process's reply listener (request-response).
    pub replies: Replies,
    /// The dead letters of every stream (the admin's actions go through it).
    pub dead_letters: DeadLetters,
    /// Verifies bearer tokens.
    pub tokens: Tokens,
    /// Prompt templates of content generation.
    pub templates: Arc<Templates>,
    /// The AI providers (to refuse an unknown one before publishing).
    pub providers: Arc<Providers>,
    /// Per-user rate limits.
    pub limits: Arc<RateLimits>,
    /// The files directory.
    pub files: crate::files::storage::FileStore,
    /// The embedders (search embeds the query).
    pub embedders: Arc<crate::embeddings::Embedders>,
    /// The settings the API reads (limits, timeouts).
    pub settings: Arc<Settings>,
    /// The engine's measurements (`/metrics`, `/api/v1/metrics`).
    pub metrics: EngineMetrics,
    /// What the scaler did to this process's pools.
    pub scaling: crate::scaler::ScalingBoard,
    /// This process's notification sockets (`GET /ws`).
    pub hub: Arc<crate::notify::hub::Hub>,
}

/// The API's routes, for the server and for the OpenAPI document.
fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let http = &state.settings.http;
    let json = web::JsonConfig::default()
        .limit(http.max_json_bytes)
        .error_handler(error::json_error);
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(openapi::base())
        .app_data(state.clone())
        .app_data(json)
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .service(health::healthz)
        .service(health::readyz)
        .service(metrics::prometheus_text)
        .service(page::index)
        .service(page::asset)
        .service(crate::notify::ws::connect)
        .service(
            utoipa_actix_web::scope("/api/v1")
                .configure(content::routes)
                .configure(files::routes)
                .configure(events::routes)
                .configure(preferences::routes)
                .configure(projections::routes)
                .configure(streams::routes)
                .configure(metrics::routes)
                .configure(dlq::routes)
                .configure(push::routes)
                .configure(sagas::routes)
                .configure(notifications::routes)
                .configure(briefings::routes)
                .configure(market::routes),
        )
        .split_for_parts();
    app.wrap(actix_web::middleware::from_fn(refuse_nul))
        .wrap(actix_web::middleware::from_fn(trace_request))
        .wrap(actix_web::middleware::Condition::new(
            !http.cors_origins.is_empty(),
            cors(&http.cors_origins),
        ))
        .app_data(web::Data::new(openapi::Document::new(api)))
        .route("/api/openapi.json", web::get().to(openapi::serve))
        .default_service(web::to(not_found))
}

/// CORS for the configured origins only (off when there are none): browsers on
/// those origins may call the API with a bearer token.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut c = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
        ])
        .allowed_header("idempotency-key")
        .expose_headers([actix_web::http::header::RETRY_AFTER])
        .max_age(3600);
    for o in origins {
        c = c.allowed_origin(o);
    }
    c
}

/// Every request runs in a server span (see `telemetry::http_span`), so what its
/// handler publishes joins the caller's trace.
async fn trace_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use tracing::Instrument as _;
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let span = crate::telemetry::http_span(method.as_str(), &route, req.headers());
    let started = std::time::Instant::now();
    let res = next.call(req).instrument(span.clone()).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    span.record("http.response.status_code", status);
    // An access line at debug, inside the request's span (so JSON logs carry its
    // trace id): the route's pattern, never the path with its ids or the caller.
    span.in_scope(|| {
        tracing::debug!(
            method = %method,
            route = %route,
            status,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    });
    res
}

/// A `%00` in the path or query would reach a database text column that refuses
/// it: a 400 here instead of a 500 there.
async fn refuse_nul(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let raw = req.uri().path_and_query().map_or("", |p| p.as_str());
    // "%00" is all digits after the '%': no case to fold, nothing to allocate.
    if raw.contains("%00") {
        return Err(ApiError::bad_request(
            "invalid_query",
            "the URL contains a NUL character (%00)",
        )
        .into());
    }
    next.call(req).await
}

async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

/// Binds `addr` and starts serving; returns the bound address and a handle to stop
/// the server. Signals are not handled here: the caller drains the engine first.
pub fn start(addr: &str, state: AppState) -> std::io::Result<(std::net::SocketAddr, ServerHandle)> {
    let workers = state.settings.http.workers;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || app(data.clone()))
        .workers(workers.max(1))
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
