//! Bearer-token authentication of mutating endpoints.
//!
//! Guarantee: [`require_session`] answers 401 (problem+json with
//! `WWW-Authenticate: Bearer`) for a missing, malformed, expired or revoked
//! token or one whose user no longer exists, and 503 when the session store
//! is unreachable — never 500. What the caller may then do is decided by
//! [`crate::authz`]; [`forbidden`] is the 403 it answers otherwise.

use axum::http::{header, HeaderMap};

use super::AppState;
use crate::authz::Principal;
use crate::error::ApiError;
use crate::sessions::SessionError;

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Unavailable(m) => ApiError::Unavailable(m),
            SessionError::Other(m) => ApiError::Internal(m),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller behind the request's valid session, or 401/503.
pub async fn require_session(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers)
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".to_owned()))?;
    state.sessions.validate(token).await?.ok_or_else(|| {
        ApiError::Unauthorized("the token is invalid, expired or revoked".to_owned())
    })
}

/// The 403 problem for an authenticated caller without the right.
pub fn forbidden(what: &str) -> ApiError {
    ApiError::Forbidden(format!("you may not {what}"))
}
