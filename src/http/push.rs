//! Web Push subscriptions of the caller's browsers: the server's VAPID public key
//! (the `applicationServerKey` of `pushManager.subscribe`), subscribe, unsubscribe.
//!
//! Invariants: a caller reaches only their own subscriptions; a subscription is
//! checked (an `https://` endpoint, a P-256 key, a 16-byte secret) before it is
//! stored; endpoints are never logged.

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, Body, Caller, ErrorBody};
use crate::notify::push::{self, check_subscription};
use crate::notify::vapid::VapidError;
use crate::store::entities::push_subscription;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(vapid_public_key)
        .service(subscribe)
        .service(unsubscribe);
}

/// A browser's `PushSubscription.toJSON()`: `{endpoint, keys: {p256dh, auth}}`
/// (`expirationTime` and other members are ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct Subscription {
    /// The push service URL (`https://`).
    endpoint: String,
    /// The browser's keys.
    keys: SubscriptionKeys,
}

/// `keys` of [`Subscription`].
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct SubscriptionKeys {
    /// The browser's P-256 public key, base64url (65 bytes).
    p256dh: String,
    /// The browser's authentication secret, base64url (16 bytes).
    auth: String,
}

/// Which subscription to remove.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct Unsubscribe {
    /// The endpoint it was subscribed with.
    endpoint: String,
}

fn vapid_error(e: VapidError) -> ApiError {
    match e {
        VapidError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}

/// The server's VAPID public key, base64url (an uncompressed P-256 point): what a
/// browser passes as `applicationServerKey` to `pushManager.subscribe`.
#[utoipa::path(
    tag = "push",
    responses(
        (status = 200, description = "`{public_key}`", body = Object),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/push/vapid-public-key")]
async fn vapid_public_key(
    state: web::Data<AppState>,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let store = state.db.http()?;
    let key = push::public_key(&state.settings.notifications.push, store)
        .await
        .map_err(vapid_error)?;
    Ok(HttpResponse::Ok().json(json!({ "public_key": key })))
}

/// Subscribes one of the caller's browsers. Subscribing an endpoint again updates
/// its keys (and moves it to the caller if another user had it); past the
/// per-user limit the oldest subscription is dropped.
#[utoipa::path(
    tag = "push",
    request_body = Subscription,
    responses(
        (status = 201, description = "`{endpoint}`: subscribed", body = Object),
        (status = 400, description = "A field is missing or not valid; the message names it", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/push/subscriptions")]
async fn subscribe(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<Subscription>,
) -> Result<HttpResponse, ApiError> {
    let s = body.into_inner();
    let settings = &state.settings.notifications.push;
    let checked = check_subscription(
        &s.endpoint,
        &s.keys.p256dh,
        &s.keys.auth,
        settings.allow_http_loopback,
    )
    .map_err(|(field, problem)| ApiError::invalid_field(field, problem))?;
    let store = state.db.http()?;
    store
        .subscribe_push(
            push_subscription::Model {
                endpoint: checked.endpoint.clone(),
                user_id: caller.user_id.clone(),
                p256dh: checked.p256dh,
                auth: checked.auth,
                created_at_ms: chrono::Utc::now().timestamp_millis(),
            },
            settings.max_subscriptions_per_user.max(1),
        )
        .await?;
    Ok(HttpResponse::Created().json(json!({ "endpoint": checked.endpoint })))
}

/// Removes one of the caller's subscriptions.
#[utoipa::path(
    tag = "push",
    request_body = Unsubscribe,
    responses(
        (status = 204, description = "Removed"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "The caller has no subscription with this endpoint", body = ErrorBody),
        (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
#[delete("/push/subscriptions")]
async fn unsubscribe(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<Unsubscribe>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = body.into_inner().endpoint;
    if endpoint.is_empty() || endpoint.len() > push::MAX_ENDPOINT {
        return Err(ApiError::invalid_field(
            "endpoint",
            format!("must be 1 to {} bytes", push::MAX_ENDPOINT),
        ));
    }
    let store = state.db.http()?;
    if store.unsubscribe_push(&caller.user_id, &endpoint).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("no such subscription of yours"))
    }
}
