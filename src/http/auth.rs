//! The caller of a request, from its bearer token (`Authorization: Bearer ...`).
//!
//! Invariant: a handler that takes a [`Caller`] never runs for a request without a
//! valid token; ownership is checked with [`Caller::may_act_for`] before any read
//! or write of a user's data, and admin routes call [`Caller::require_admin`] first.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::{ApiError, AppState};
use crate::auth::AuthError;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's user id.
    pub user_id: String,
    /// The token's admin flag.
    pub admin: bool,
}

impl Caller {
    /// 403 unless the caller is `user_id` or an admin.
    pub fn may_act_for(&self, user_id: &str) -> Result<(), ApiError> {
        if self.admin || self.user_id == user_id {
            Ok(())
        } else {
            Err(ApiError::forbidden("this belongs to another user"))
        }
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("admin only"))
        }
    }
}

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("no app state"))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match header {
        Some(h) => {
            let (scheme, token) = h.split_once(' ').unwrap_or((h, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(ApiError::unauthorized(
                    "the Authorization header must be `Bearer <token>`",
                ));
            }
            token.trim()
        }
        None => return Err(ApiError::unauthorized(AuthError::Missing.to_string())),
    };
    let claims = state
        .tokens
        .verify(token)
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    Ok(Caller {
        user_id: claims.sub,
        admin: claims.admin,
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req))
    }
}
