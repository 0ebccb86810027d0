//! The one error shape of the API: `{"error": {"code", "message"}}` with a fitting
//! status, plus the handlers that turn actix's own extractor failures (bad JSON, a
//! body too large, a bad path or query) into it.
//!
//! Invariant: no handler answers an error any other way, and no internal detail
//! (a SQL statement, a Redis reply) reaches the client beyond a one-line message.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `invalid_body`.
    pub code: &'static str,
    /// A readable message; names the field when one is at fault.
    pub message: String,
    /// Extra members of the `error` object (e.g. `request_id` on a 504).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

/// The body of every error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// `error` of [`ErrorBody`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `invalid_body`, `unauthorized`, `timeout`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
            retry_after: None,
        }
    }

    /// 400: bad input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 naming the field at fault.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::bad_request("invalid_body", format!("{field}: {problem}"))
    }

    /// 401: no token or a bad one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: not yours, or not admin.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 429 with `Retry-After`.
    pub fn too_many(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {retry_after_secs} s"),
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// 503: Redis or the database is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 504 naming the request and where to fetch its outcome later (`later`, e.g.
    /// `/api/v1/content/requests/<id>`).
    pub fn timeout(request_id: &str, waited_ms: u64, later: &str) -> Self {
        let mut e = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("no answer within {waited_ms} ms; the request goes on: GET {later}"),
        );
        let mut extra = serde_json::Map::new();
        extra.insert("request_id".into(), request_id.into());
        e.extra = Some(extra);
        e
    }

    /// 500, with the detail logged and not answered.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answered as 500");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(extra) = &self.extra {
            error.extend(extra.clone());
        }
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.insert_header((RETRY_AFTER, v));
        }
        res.json(serde_json::json!({ "error": error }))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        match e {
            S::Connect { .. } => ApiError::unavailable("the database is not available"),
            S::Conflict(m) => ApiError::conflict(m),
            S::UnknownCursor(c) => {
                ApiError::bad_request("invalid_query", format!("after: no event {c}"))
            }
            S::Db(sea_orm::DbErr::Conn(_)) | S::Db(sea_orm::DbErr::ConnectionAcquire(_)) => {
                ApiError::unavailable("the database is not available")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        if strategist_actors::redis_io::refused_for_memory(&e) {
            // Redis at `maxmemory` under `noeviction` refuses writes that add memory,
            // and only those: consumers still read and ack, retention still trims,
            // so the refusal ends by itself once they have freed memory.
            tracing::warn!(error = %e, "redis refused a write: at its memory limit");
            let mut err = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "redis_full",
                "Redis is at its memory limit (maxmemory) and refuses new writes; \
                 nothing was written; retry once consumers and retention have freed memory",
            );
            err.retry_after = Some(5);
            return err;
        }
        tracing::warn!(error = %e, "redis failed under a request");
        ApiError::unavailable("Redis is not available")
    }
}

/// Turns a JSON extractor failure into a 400 naming the field (or 413).
pub(super) fn json_error(
    err: actix_web::error::JsonPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { length, limit } => ApiError::too_large(format!(
            "body of {length} bytes is over the limit of {limit}"
        )),
        J::Overflow { limit } => {
            ApiError::too_large(format!("body is over the limit of {limit} bytes"))
        }
        J::ContentType => ApiError::bad_request(
            "invalid_content_type",
            "the body must be JSON (Content-Type: application/json)",
        ),
        J::Deserialize(e) => ApiError::bad_request("invalid_body", describe_serde(e)),
        other => ApiError::bad_request("invalid_body", other.to_string()),
    };
    api.into()
}

/// Serde's message already names the field (`missing field `x``, `unknown
/// variant ...`); keep it, with the position for syntax errors.
fn describe_serde(e: &serde_json::Error) -> String {
    e.to_string()
}

/// Turns a query-string extractor failure into a 400.
pub(super) fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request("invalid_query", err.to_string()).into()
}

/// Turns a path extractor failure into a 400.
pub(super) fn path_error(
    err: actix_web::error::PathError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request("invalid_path", err.to_string()).into()
}
