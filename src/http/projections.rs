//! `POST /projections/{name}/rebuild` (admin): rebuilds a projection from the event
//! store, for one user (`?user_id=`) or all, while live events keep being applied
//! (see [`crate::projections::rebuild`]). It answers when the rebuild is done.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::projections::{self, RebuildError};

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(rebuild);
}

/// Query of the rebuild.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RebuildQuery {
    /// Only this user; every user the projection knows when absent.
    user_id: Option<String>,
}

/// Rebuilds projection `name` (e.g. `user-preferences`) from history.
#[utoipa::path(
    tag = "admin",
    params(("name" = String, Path, description = "The projection, e.g. `user-preferences`"), RebuildQuery),
    responses(
        (status = 200, description = "`{projection, users, events}`: users rebuilt, events replayed", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No projection of that name", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/projections/{name}/rebuild")]
async fn rebuild(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    q: web::Query<RebuildQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    projections::check_name(&name).map_err(|e| ApiError::not_found(e.to_string()))?;
    if q.user_id.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "user_id: must not be empty",
        ));
    }
    let store = state.db.http()?;
    let (users, events) = projections::rebuild(store, &name, q.into_inner().user_id, |_, _, _| {})
        .await
        .map_err(|e| match e {
            RebuildError::Unknown(_) => ApiError::not_found(e.to_string()),
            RebuildError::Users(s) | RebuildError::User { source: s, .. } => ApiError::from(s),
        })?;
    Ok(HttpResponse::Ok().json(json!({
        "projection": name.as_str(), "users": users, "events": events,
    })))
}
