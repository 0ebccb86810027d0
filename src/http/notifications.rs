//! The caller's notifications: `GET /notifications` (paged by id, so in time
//! order) and `POST /notifications/{id}/read`. Live ones arrive on `GET /ws`.
//!
//! A person reaches only their own notifications: another's id is a 404.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::notify::frames::{NotificationView, now_rfc3339};
use crate::store::notifications::NotificationQuery;

/// The default page size.
const DEFAULT_LIMIT: u64 = 50;
/// The largest page.
const MAX_LIMIT: u64 = 500;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(read);
}

/// Query of `GET /notifications`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only notifications after this id (the `next` of the previous page).
    after: Option<String>,
    /// Page size, 1..=500 (default 50).
    limit: Option<u64>,
    /// Only those not read yet.
    unread: Option<bool>,
}

/// A page of notifications.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NotificationPage {
    /// In id order (oldest first).
    notifications: Vec<NotificationView>,
    /// The last id of this page when more may follow; null on the last page.
    next: Option<String>,
}

/// The caller's notifications, ascending by id, after `after`.
#[utoipa::path(
    tag = "notifications",
    params(ListQuery),
    responses(
        (status = 200, body = NotificationPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/notifications")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    if let Some(a) = &q.after
        && ulid::Ulid::from_string(a).is_err()
    {
        return Err(ApiError::invalid_field(
            "after",
            "must be a notification id (a ULID)",
        ));
    }
    let rows = state
        .db
        .http()?
        .notifications(&NotificationQuery {
            user_id: caller.user_id,
            after: q.after,
            unread: q.unread.unwrap_or(false),
            limit,
        })
        .await?;
    let next = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(NotificationPage {
        notifications: rows.into_iter().map(NotificationView::from).collect(),
        next,
    }))
}

/// Marks one of the caller's notifications read (and delivered).
#[utoipa::path(
    tag = "notifications",
    params(("id" = String, Path, description = "The notification's id")),
    responses(
        (status = 204, description = "Marked read (marking it again changes nothing)"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "The caller has no such notification", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/notifications/{id}/read")]
async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = state
        .db
        .http()?
        .mark_notification_read(&caller.user_id, &id, &now_rfc3339())
        .await?;
    if !found {
        return Err(ApiError::not_found(format!(
            "no notification `{}`",
            id.as_str()
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}
