//! `POST /sessions` (log in) and `DELETE /sessions/current` (log out).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{bearer, require_session};
use super::{json_object, AppState, JsonObjectBody};
use crate::client_addr::client_ip;
use crate::error::{ApiError, Problem};
use crate::request_log::current_request_id;
use crate::sessions::{hash_password, verify_password};
use crate::validation::{self, FieldError};

/// Body of `POST /sessions`.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    /// The user's e-mail address (compared trimmed and lower-cased).
    #[schema(value_type = String, required = true)]
    pub email: Option<String>,
    /// The user's password.
    #[schema(value_type = String, required = true)]
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"***")
            .finish()
    }
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionToken {
    /// Opaque bearer token (32 random bytes, base64url); send it as
    /// `Authorization: Bearer <token>`.
    pub token: String,
    /// Expiry time (UTC).
    pub expires_at: DateTime<Utc>,
}

/// Log in with e-mail and password.
///
/// Attempts are limited per e-mail address and per client address
/// (`LOGIN_LIMIT_*`); past a limit the answer is 429 with `Retry-After`.
#[utoipa::path(post, path = "/sessions", tag = "sessions", request_body = Credentials,
    responses(
        (status = 201, description = "Session created", body = SessionToken),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong e-mail or password", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 413, description = "Body larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields or wrong JSON types", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many log-in attempts for this e-mail address or from this client address", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until attempts are counted afresh"))),
        (status = 503, description = "Session store or database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: JsonObjectBody,
) -> Result<Response, ApiError> {
    let body: Credentials = json_object(body)?;
    let mut errors = Vec::new();
    if body.email.is_none() {
        errors.push(FieldError::new("email", "required", "is required"));
    }
    if body.password.is_none() {
        errors.push(FieldError::new("password", "required", "is required"));
    }
    let (Some(email), Some(password)) = (body.email, body.password) else {
        return Err(ApiError::Validation(errors));
    };
    let valid_email = validation::email(&email).ok();
    let counted_as = valid_email
        .clone()
        .unwrap_or_else(|| email.trim().to_lowercase());
    let client = client_ip(peer.ip(), &headers, &state.trusted_proxies);
    if let Some(retry_after) = state.login_limiter.attempt(&counted_as, client).await? {
        tracing::debug!(client = %client, retry_after_s = retry_after.as_secs(), "log-in rate limited");
        return Err(ApiError::TooManyRequests(retry_after));
    }
    let wrong = || ApiError::Unauthorized("wrong e-mail or password".to_owned());
    let creds = match &valid_email {
        Some(e) => state.db.get_credentials(e).await?,
        None => None,
    };
    let Some((user_id, Some(phc))) = creds else {
        // Spend the same argon2 work as a real check, so response time does
        // not reveal whether the e-mail exists.
        let _ = hash_password(password).await;
        return Err(wrong());
    };
    if !verify_password(password, phc).await {
        return Err(wrong());
    }
    state.login_limiter.clear_email(&counted_as).await?;
    let s = state.sessions.create(user_id).await?;
    tracing::info!(user_id, request_id = %current_request_id(), "session created");
    Ok((
        StatusCode::CREATED,
        Json(SessionToken {
            token: s.token,
            expires_at: DateTime::from_timestamp_millis(s.expires_at_ms).unwrap_or_default(),
        }),
    )
        .into_response())
}

/// Log out: revoke the bearer token of this request.
#[utoipa::path(delete, path = "/sessions/current", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing, expired or revoked token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 503, description = "Session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = require_session(&state, &headers).await?;
    if let Some(token) = bearer(&headers) {
        state.sessions.revoke(token).await?;
    }
    tracing::info!(user_id = caller.user_id, request_id = %current_request_id(), "session revoked");
    Ok(StatusCode::NO_CONTENT)
}
