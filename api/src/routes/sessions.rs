//! `POST /sessions` (log in) and `DELETE /sessions/current` (log out).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{bearer, require_session};
use super::AppState;
use crate::error::{ApiError, Problem};
use crate::sessions::{hash_password, verify_password};
use crate::validation::{self, FieldError};

/// Body of `POST /sessions`.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    /// The user's e-mail address.
    pub email: Option<String>,
    /// The user's password.
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
#[utoipa::path(post, path = "/sessions", tag = "sessions", request_body = Credentials,
    responses(
        (status = 201, description = "Session created", body = SessionToken),
        (status = 401, description = "Wrong e-mail or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Session store or database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
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
    let wrong = || ApiError::Unauthorized("wrong e-mail or password".to_owned());
    let creds = match validation::email(&email) {
        Ok(e) => state.db.get_credentials(&e).await?,
        Err(_) => None,
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
    let s = state.sessions.create(user_id).await?;
    tracing::info!(user_id, "session created");
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
        (status = 401, description = "Missing, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let user_id = require_session(&state, &headers).await?;
    if let Some(token) = bearer(&headers) {
        state.sessions.revoke(token).await?;
    }
    tracing::info!(user_id, "session revoked");
    Ok(StatusCode::NO_CONTENT)
}
