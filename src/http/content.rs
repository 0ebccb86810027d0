//! Content generation and consultations over HTTP: thin layers over the engine's
//! request-response ([`strategist_actors::Replies`]) and the stored drafts.
//!
//! `POST /content/generate` checks the caller, the template and its variables, the
//! provider and the limits (400 before anything is published), records the request,
//! publishes `ai.content.generation.requested` with the request id as correlation id
//! and waits for its `.completed` (200) or `.failed` (502), or answers 504 with the
//! request id; the answer that comes later is stored by the worker and read with
//! `GET /content/requests/{request_id}` (202 while pending).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::json;
use strategist_actors::{Envelope, EventType, RequestError};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Body, Caller, ErrorBody};
use crate::events::ai::{
    AiConsultationCompleted, AiConsultationFailed, AiConsultationRequested,
    AiContentGenerationCompleted, AiContentGenerationFailed, AiContentGenerationRequested,
    ContentType, SessionType,
};
use crate::store::ai::{CONSULTATION, CONTENT};

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(generate)
        .service(generation_request)
        .service(consult)
        .service(consultation)
        .service(draft)
        .service(drafts);
}

/// `POST /content/generate`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GenerateBody {
    /// The contextual core to draw on.
    contextual_core_id: String,
    /// social_post, blog_article, marketing_copy or email.
    #[schema(value_type = String, example = "social_post")]
    content_type: ContentType,
    /// A template name from the configuration (`[ai.templates]`).
    prompt_template: String,
    /// Values of the template's placeholders.
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// A provider name; the configured default when absent.
    #[serde(default)]
    ai_provider: Option<String>,
    /// The most tokens to generate (default 1024).
    #[serde(default)]
    max_tokens: Option<u32>,
    /// How long to wait for the answer (default `ai.default_timeout_ms`).
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// For admins acting for a user; others may only name themselves.
    #[serde(default)]
    user_id: Option<String>,
}

/// `POST /consultations`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsultBody {
    /// The contextual core to draw on.
    contextual_core_id: String,
    /// The question.
    query: String,
    /// strategic_advice, trend_analysis or goal_planning.
    #[schema(value_type = String, example = "strategic_advice")]
    session_type: SessionType,
    /// How long to wait for the answer.
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// For admins acting for a user.
    #[serde(default)]
    user_id: Option<String>,
}

fn subject(caller: &Caller, named: Option<&str>) -> Result<String, ApiError> {
    match named {
        Some(u) => {
            caller.may_act_for(u)?;
            Ok(u.to_string())
        }
        None => Ok(caller.user_id.clone()),
    }
}

fn non_empty(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if v.len() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("longer than {max} bytes"),
        ));
    }
    Ok(())
}

fn timeout(state: &AppState, asked: Option<u64>) -> Result<Duration, ApiError> {
    let ai = &state.settings.ai;
    let ms = asked.unwrap_or(ai.default_timeout_ms);
    if ms == 0 || ms > ai.max_timeout_ms {
        return Err(ApiError::invalid_field(
            "timeout_ms",
            format!("must be between 1 and {}", ai.max_timeout_ms),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Publishes `request` and waits for one of `replies`, mapping the outcome; `later`
/// is where the outcome can be fetched after a 504. A request that could not be
/// published is marked failed, so it does not look pending for ever.
async fn ask(
    state: &AppState,
    request: Envelope,
    stream: &str,
    reply_types: &[&str],
    wait: Duration,
    later: &str,
) -> Result<Envelope, ApiError> {
    let id = request.correlation_id.clone().unwrap_or_default();
    let sent = state
        .replies
        .send(&state.publisher, stream, &request, reply_types)
        .await;
    let pending = match sent {
        Ok((_, pending)) => pending,
        Err(e) => {
            let kind = if later.contains("/consultations/") {
                CONSULTATION
            } else {
                CONTENT
            };
            if let Ok(store) = state.db.http() {
                let user = request.user_id.as_deref().unwrap_or_default();
                let _ = store
                    .fail_request(
                        &id,
                        kind,
                        user,
                        &request.data,
                        "the request could not be published",
                    )
                    .await;
            }
            return Err(match e {
                RequestError::Publish(strategist_actors::PublishError::Invalid(e)) => {
                    ApiError::bad_request("invalid_event", e.to_string())
                }
                other => {
                    tracing::warn!(error = %other, "a request could not be published");
                    ApiError::unavailable("Redis is not available; the request was not sent")
                }
            });
        }
    };
    match pending.wait(wait).await {
        Ok(env) => Ok(env),
        Err(RequestError::Timeout { waited_ms, .. }) => {
            Err(ApiError::timeout(&id, waited_ms, later))
        }
        Err(e) => {
            tracing::warn!(error = %e, "a request lost its reply listener");
            Err(ApiError::unavailable(
                "the server is shutting down; the request goes on",
            ))
        }
    }
}

fn failed(env: &Envelope) -> ApiError {
    let error = env.data["error"].as_str().unwrap_or("the request failed");
    let mut e = ApiError::bad_request("generation_failed", error.to_string());
    e.status = StatusCode::BAD_GATEWAY;
    e
}

/// Generates content and answers with the `ai.content.generation.completed` data.
#[utoipa::path(
    tag = "content",
    request_body = GenerateBody,
    responses(
        (status = 200, description = "The completion event's data", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody),
        (status = 504, description = "No answer in time; `error.request_id` names it", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/content/generate")]
async fn generate(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<GenerateBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let user_id = subject(&caller, b.user_id.as_deref())?;
    non_empty("contextual_core_id", &b.contextual_core_id, 200)?;
    state
        .templates
        .render(&b.prompt_template, &b.variables)
        .map_err(|e| match e {
            crate::ai::TemplateError::Unknown(..) => ApiError::invalid_field("prompt_template", e),
            crate::ai::TemplateError::Missing(..) => {
                ApiError::bad_request("invalid_body", e.to_string())
            }
        })?;
    for (k, v) in &b.variables {
        if v.len() > 10_000 {
            return Err(ApiError::invalid_field(
                &format!("variables.{k}"),
                "longer than 10000 bytes",
            ));
        }
    }
    let ai_provider = b.ai_provider.unwrap_or_default();
    // Named here, so the event says which provider answers: when the request names
    // none, the best by the stored benchmarks (else the default).
    let provider = state
        .providers
        .choose_for_request(
            &ai_provider,
            state.db.try_get(),
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        .map_err(|e| ApiError::invalid_field("ai_provider", e))?;
    let cap = state.settings.ai.max_tokens_cap;
    let max_tokens = b.max_tokens.unwrap_or(1024.min(cap));
    if max_tokens == 0 || max_tokens > cap {
        return Err(ApiError::invalid_field(
            "max_tokens",
            format!("must be between 1 and {cap}"),
        ));
    }
    let wait = timeout(&state, b.timeout_ms)?;
    state.limits.generation(&user_id)?;

    let request_id = Ulid::generate().to_string();
    let data = AiContentGenerationRequested {
        request_id: request_id.clone(),
        user_id: user_id.clone(),
        contextual_core_id: b.contextual_core_id,
        content_type: b.content_type,
        prompt_template: b.prompt_template,
        ai_provider: provider.name().to_string(),
        max_tokens,
        variables: b.variables,
    };
    let payload = serde_json::to_value(&data).map_err(ApiError::internal)?;
    state
        .db
        .http()?
        .record_request(&request_id, CONTENT, &user_id, &payload)
        .await?;
    let request = Envelope::new(AiContentGenerationRequested::TYPE, 1, payload)
        .with_correlation(&request_id)
        .with_user(&user_id);
    let reply = ask(
        &state,
        request,
        AiContentGenerationRequested::STREAM,
        &[
            AiContentGenerationCompleted::TYPE,
            AiContentGenerationFailed::TYPE,
        ],
        wait,
        &format!("/api/v1/content/requests/{request_id}"),
    )
    .await?;
    if reply.event_type == AiContentGenerationFailed::TYPE {
        return Err(failed(&reply));
    }
    Ok(HttpResponse::Ok().json(reply.data))
}

/// Asks a consultation and answers with the `ai.consultation.completed` data.
#[utoipa::path(
    tag = "consultations",
    request_body = ConsultBody,
    responses(
        (status = 200, description = "The completion event's data", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 504, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/consultations")]
async fn consult(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<ConsultBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let user_id = subject(&caller, b.user_id.as_deref())?;
    non_empty("contextual_core_id", &b.contextual_core_id, 200)?;
    non_empty("query", &b.query, 20_000)?;
    let wait = timeout(&state, b.timeout_ms)?;
    state.limits.generation(&user_id)?;
    let session_id = Ulid::generate().to_string();
    let data = AiConsultationRequested {
        session_id: session_id.clone(),
        user_id: user_id.clone(),
        contextual_core_id: b.contextual_core_id,
        query: b.query,
        session_type: b.session_type,
    };
    let payload = serde_json::to_value(&data).map_err(ApiError::internal)?;
    state
        .db
        .http()?
        .record_request(&session_id, CONSULTATION, &user_id, &payload)
        .await?;
    let request = Envelope::new(AiConsultationRequested::TYPE, 1, payload)
        .with_correlation(&session_id)
        .with_user(&user_id);
    let reply = ask(
        &state,
        request,
        AiConsultationRequested::STREAM,
        &[AiConsultationCompleted::TYPE, AiConsultationFailed::TYPE],
        wait,
        &format!("/api/v1/consultations/{session_id}"),
    )
    .await?;
    if reply.event_type == AiConsultationFailed::TYPE {
        return Err(failed(&reply));
    }
    Ok(HttpResponse::Ok().json(reply.data))
}

async fn outcome(
    state: &AppState,
    caller: &Caller,
    id: &str,
    kind: &str,
) -> Result<HttpResponse, ApiError> {
    let row = state.db.http()?.ai_request(id).await?;
    let row = match row {
        Some(r) if r.kind == kind && caller.may_act_for(&r.user_id).is_ok() => r,
        // Another user's request is not found, so ids cannot be probed.
        _ => return Err(ApiError::not_found(format!("no request {id}"))),
    };
    let result: Option<serde_json::Value> = row
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let body = json!({
        "request_id": row.request_id,
        "status": row.status,
        "result": result,
        "error": row.error,
    });
    Ok(if row.status == "pending" {
        HttpResponse::Accepted().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// The outcome of a generation request: 202 while pending, 200 with `result` (the
/// completion's data) or `error` once decided.
#[utoipa::path(
    tag = "content",
    params(("request_id" = String, Path, description = "From the POST's answer or its 504")),
    responses(
        (status = 200, description = "`{request_id, status, result, error}`", body = Object),
        (status = 202, description = "Still pending", body = Object),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/content/requests/{request_id}")]
async fn generation_request(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    outcome(&state, &caller, &path, CONTENT).await
}

/// The outcome of a consultation, as for generation requests.
#[utoipa::path(
    tag = "consultations",
    params(("session_id" = String, Path, description = "The consultation's session id")),
    responses(
        (status = 200, body = Object), (status = 202, body = Object),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/consultations/{session_id}")]
async fn consultation(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    outcome(&state, &caller, &path, CONSULTATION).await
}

/// One of the caller's drafts.
#[utoipa::path(
    tag = "content",
    params(("id" = String, Path, description = "The draft id")),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/content/drafts/{id}")]
async fn draft(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match state.db.http()?.draft(&path).await? {
        Some(d) if caller.may_act_for(&d.user_id).is_ok() => Ok(HttpResponse::Ok().json(d)),
        _ => Err(ApiError::not_found(format!("no draft {}", path.as_str()))),
    }
}

/// Query of `GET /content/drafts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DraftsQuery {
    /// Page size, 1..=500 (default 50).
    limit: Option<u64>,
    /// The last draft id of the previous page.
    after: Option<String>,
    /// Admins: whose drafts.
    user_id: Option<String>,
}

/// The caller's drafts, oldest first, paged by `after`.
#[utoipa::path(
    tag = "content",
    params(DraftsQuery),
    responses((status = 200, description = "`{drafts, next_after}`", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/content/drafts")]
async fn drafts(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<DraftsQuery>,
) -> Result<HttpResponse, ApiError> {
    let user_id = subject(&caller, q.user_id.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be between 1 and 500",
        ));
    }
    let page = state
        .db
        .http()?
        .drafts(&user_id, q.after.as_deref(), limit)
        .await?;
    let next = (page.len() as u64 == limit)
        .then(|| page.last().map(|d| d.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({ "drafts": page, "next_after": next })))
}
