//! `Body<T>`: a JSON request body, read up to the route's size limit and decoded
//! with the path of the offending field in the error (`variables.topic: invalid
//! type: integer, expected a string`), where actix's own `Json` gives only a line
//! and column.
//!
//! Invariants: a body over the limit is refused (413) from its `Content-Length`
//! before it is read, or as soon as the bytes read pass the limit, never buffered
//! whole; a body that is not JSON, or does not fit `T`, or holds a NUL character in
//! any string, is a 400 naming the field.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

/// A route's own body limit, set with `.app_data(BodyLimit(n))` on its scope or
/// resource; otherwise `http.body_limits` by route pattern, then
/// `http.max_json_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T> Body<T> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Body<T>, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let pattern = req.match_pattern();
        let limit = req
            .app_data::<BodyLimit>()
            .map(|l| l.0)
            .or_else(|| {
                req.app_data::<web::Data<AppState>>().map(|s| {
                    let http = &s.settings.http;
                    pattern
                        .as_deref()
                        .and_then(|p| http.body_limits.get(p).copied())
                        .unwrap_or(http.max_json_bytes)
                })
            })
            .unwrap_or(256 * 1024);
        let json = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if json == Some(false) {
                return Err(ApiError::bad_request(
                    "invalid_content_type",
                    "the body must be JSON (Content-Type: application/json)",
                ));
            }
            if let Some(n) = declared
                && n > limit
            {
                return Err(ApiError::too_large(format!(
                    "body of {n} bytes is over the limit of {limit}"
                )));
            }
            let mut bytes = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
                if bytes.len() + chunk.len() > limit {
                    return Err(ApiError::too_large(format!(
                        "body is over the limit of {limit} bytes"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            if bytes.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "the body is empty; a JSON object is expected",
                ));
            }
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                let msg = e.to_string();
                ApiError::bad_request("invalid_body", format!("not JSON: {msg}"))
            })?;
            if let Some(path) = nul_at(&value, String::new()) {
                let path = if path.is_empty() {
                    ".".to_string()
                } else {
                    path
                };
                return Err(ApiError::invalid_field(&path, "contains a NUL character"));
            }
            match serde_path_to_error::deserialize::<_, T>(value) {
                Ok(v) => Ok(Body(v)),
                Err(e) => {
                    let path = e.path().to_string();
                    let msg = e.into_inner().to_string();
                    Err(if path == "." || path.is_empty() {
                        ApiError::bad_request("invalid_body", msg)
                    } else {
                        ApiError::invalid_field(&path, msg)
                    })
                }
            }
        })
    }
}

/// The path of the first string (or key) holding a NUL character: no database text
/// column takes one, so it is refused at the edge instead of failing a write later.
fn nul_at(v: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, format!("{path}[{i}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_at(x, here)
            }
        }),
        _ => None,
    }
}
