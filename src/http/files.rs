//! Files over HTTP: upload (multipart, streamed to disk), the processing state of a
//! file step by step, and search over a contextual core.
//!
//! Invariants: an upload over `files.max_upload_bytes` is refused (413) from its
//! `Content-Length` before a byte is read, or as soon as the bytes streamed pass the
//! limit, and leaves nothing on disk; the MIME type is sniffed from the bytes; the
//! client's file name is shown, never used as a path; only the owner sees a file or
//! searches a core (another user's file is 404).

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use strategist_actors::{Envelope, EventType};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::events::contextual::FileUploaded;
use crate::files::extract::{is_browser_viewable, sniff};
use crate::files::storage::{StorageError, Stored, Upload, display_name};
use crate::store::entities::file;

/// Waits for the next part of an upload, at most `stall` (then 408): a client that
/// stops sending must not hold a temporary file and a worker for ever.
async fn next_or_stall<T>(
    stall: std::time::Duration,
    next: impl std::future::Future<Output = Option<T>>,
) -> Result<Option<T>, ApiError> {
    tokio::time::timeout(stall, next).await.map_err(|_| {
        let mut e = ApiError::bad_request(
            "timeout",
            format!("the upload sent nothing for {} ms", stall.as_millis()),
        );
        e.status = actix_web::http::StatusCode::REQUEST_TIMEOUT;
        e
    })
}

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(upload).service(file_state).service(search);
}

/// The multipart form of `POST /files` (for the document).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct UploadForm {
    /// The file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The contextual core it belongs to.
    contextual_core_id: String,
}

/// Uploads a file: stored, recorded, `file.uploaded` published; the processing saga
/// starts. 202 with the `file_id`.
#[utoipa::path(
    tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "`{file_id, filename, size, mime_type, sha256}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/files")]
async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let limit = state.settings.files.max_upload_bytes;
    let stall = std::time::Duration::from_millis(state.settings.files.upload_stall_ms.max(1));
    // The form's own framing is small; a body declared larger than the file limit
    // plus that is refused before it is read.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        return Err(ApiError::too_large(format!(
            "the file is over the limit of {limit} bytes"
        )));
    }
    let store = state.db.http()?;
    let mut core: Option<String> = None;
    // The upload stays a temporary file until the whole form is valid and the file
    // is recorded: a bad form leaves nothing on disk.
    let mut stored: Option<(Upload, String)> = None;
    while let Some(field) = next_or_stall(stall, form.next()).await? {
        let mut field =
            field.map_err(|e| ApiError::bad_request("invalid_body", format!("multipart: {e}")))?;
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "contextual_core_id" => {
                let mut v = Vec::new();
                while let Some(chunk) = next_or_stall(stall, field.next()).await? {
                    let chunk =
                        chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
                    v.extend_from_slice(&chunk);
                    if v.len() > 200 {
                        return Err(ApiError::invalid_field(
                            "contextual_core_id",
                            "longer than 200 bytes",
                        ));
                    }
                }
                let v = String::from_utf8(v)
                    .map_err(|_| ApiError::invalid_field("contextual_core_id", "not UTF-8"))?;
                if v.trim().is_empty() || v.contains('\0') {
                    return Err(ApiError::invalid_field(
                        "contextual_core_id",
                        "must not be empty",
                    ));
                }
                core = Some(v.trim().to_string());
            }
            "file" => {
                if stored.is_some() {
                    return Err(ApiError::invalid_field("file", "one file per upload"));
                }
                let filename = display_name(
                    field
                        .content_disposition()
                        .and_then(|d| d.get_filename())
                        .unwrap_or("upload"),
                );
                let mut up = state.files.begin(limit).await.map_err(ApiError::internal)?;
                while let Some(chunk) = next_or_stall(stall, field.next()).await? {
                    let chunk =
                        chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
                    up.write(&chunk).await.map_err(|e| match e {
                        StorageError::TooLarge(n) => {
                            ApiError::too_large(format!("the file is over the limit of {n} bytes"))
                        }
                        other => ApiError::internal(other),
                    })?;
                }
                if up.size() == 0 {
                    return Err(ApiError::invalid_field("file", "empty"));
                }
                stored = Some((up, filename));
            }
            other => {
                return Err(ApiError::invalid_field(
                    other,
                    "unknown form field; expected file and contextual_core_id",
                ));
            }
        }
    }
    let Some((upload, filename)) = stored else {
        return Err(ApiError::invalid_field("file", "missing"));
    };
    let Some(core) = core else {
        return Err(ApiError::invalid_field("contextual_core_id", "missing"));
    };
    let stored: Stored = upload.finish().await.map_err(ApiError::internal)?;
    let (mime, _) = sniff(&stored.head, &filename);
    let file_id = Ulid::generate().to_string();
    let row = file::Model {
        id: file_id.clone(),
        user_id: caller.user_id.clone(),
        contextual_core_id: core.clone(),
        filename: filename.clone(),
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
        mime_type: mime.clone(),
        sha256: stored.sha256.clone(),
        created_at_ms: chrono::Utc::now().timestamp_millis(),
    };
    store.record_file(row).await?;
    let data = FileUploaded {
        file_id: file_id.clone(),
        user_id: caller.user_id.clone(),
        contextual_core_id: core,
        filename: filename.clone(),
        file_size: stored.size,
        is_browser_viewable: is_browser_viewable(&mime),
        mime_type: mime.clone(),
    };
    let env = Envelope::new(
        FileUploaded::TYPE,
        FileUploaded::VERSION,
        serde_json::to_value(&data).map_err(ApiError::internal)?,
    )
    .with_correlation(&file_id)
    .with_user(&caller.user_id);
    if let Err(e) = state.publisher.publish(FileUploaded::STREAM, &env).await {
        tracing::warn!(error = %e, "file.uploaded could not be published");
        // No saga will start: forget the file rather than show it "waiting" for ever
        // (the client is told to upload again).
        let _ = store.forget_file(&file_id).await;
        return Err(ApiError::unavailable(
            "Redis is not available; the file was not accepted, upload it again",
        ));
    }
    Ok(HttpResponse::Accepted().json(json!({
        "file_id": file_id,
        "filename": filename,
        "size": stored.size,
        "mime_type": mime,
        "sha256": stored.sha256,
    })))
}

/// A file and its processing, step by step (the saga's record), to its owner.
#[utoipa::path(
    tag = "files",
    params(("file_id" = String, Path, description = "From the upload's answer")),
    responses(
        (status = 200, description = "`{file, status, steps, error, indexed_chunks}`", body = Object),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/files/{file_id}")]
async fn file_state(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let store = state.db.http()?;
    let f = match store.file(&path).await? {
        Some(f) if caller.may_act_for(&f.user_id).is_ok() => f,
        _ => return Err(ApiError::not_found(format!("no file {}", path.as_str()))),
    };
    let saga = store.saga(&f.id).await?;
    let text = store.file_text_size(&f.id).await?;
    let indexed = store.indexed_chunks(&f.id).await?;
    let (status, steps, error) = match &saga {
        Some(s) => (
            serde_json::to_value(s.status).unwrap_or_default(),
            serde_json::to_value(&s.history).unwrap_or_default(),
            s.error.clone(),
        ),
        None => (json!("waiting"), json!([]), None),
    };
    Ok(HttpResponse::Ok().json(json!({
        "file": f,
        "status": status,
        "steps": steps,
        "error": error,
        "text_length": text.map(|t| t.0),
        "text_truncated": text.map(|t| t.1),
        "indexed_chunks": indexed,
    })))
}

/// Query of `GET /search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchQuery {
    /// The caller's contextual core.
    contextual_core_id: String,
    /// What to look for.
    q: String,
    /// How many chunks (1..=50, default 5).
    k: Option<usize>,
}

/// The chunks of the caller's files nearest to `q`: file, position, text, score.
#[utoipa::path(
    tag = "files",
    params(SearchQuery),
    responses(
        (status = 200, description = "`{results: [{file_id, filename, chunk_index, start, end, text, score, model}]}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/search")]
async fn search(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let k = q.k.unwrap_or(5);
    if !(1..=50).contains(&k) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "k: must be between 1 and 50",
        ));
    }
    if q.q.trim().is_empty() || q.q.len() > 2000 {
        return Err(ApiError::bad_request("invalid_query", "q: 1 to 2000 bytes"));
    }
    let store = state.db.http()?;
    let hits = crate::files::search::search(
        store,
        &state.embedders,
        &caller.user_id,
        &q.contextual_core_id,
        &q.q,
        k,
    )
    .await
    .map_err(|e| match e {
        crate::files::search::SearchError::Store(s) => ApiError::from(s),
        other => ApiError::unavailable(other.to_string()),
    })?;
    Ok(HttpResponse::Ok().json(json!({ "results": hits })))
}
