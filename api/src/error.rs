//! HTTP errors as `application/problem+json` (RFC 9457).
//!
//! Guarantee: every non-2xx response produced by this service — handler
//! errors, axum extractor rejections (bad JSON, wrong content type, bad query
//! or path parameters, oversized bodies), unknown routes, wrong methods and
//! caught panics — carries a problem document with `type`, `title`,
//! `status`, `detail` and, for validation failures, an `errors` array of
//! [`FieldError`]s. Bad input never yields a 500; internal details (SQL
//! errors, panic payloads) are logged, not sent to the client.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::validation::FieldError;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI reference identifying the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    pub detail: String,
    /// Field-level validation errors, when applicable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// Errors a handler can return; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more fields failed validation (422).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Syntactically bad request: malformed JSON, unparsable parameters (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Body is not `application/json` (415).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Body exceeds the configured limit (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// Missing, expired or revoked credentials (401, with `WWW-Authenticate: Bearer`).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed to do this (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many attempts; retry after this long (429, with `Retry-After`).
    #[error("too many requests")]
    TooManyRequests(std::time::Duration),
    /// Resource or route does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Method not allowed on this route (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Unique constraint violated (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Database unreachable or pool exhausted (503).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500); the message is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Convert into the problem document sent to the client.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let (slug, detail, errors) = match self {
            ApiError::Validation(errs) => (
                "validation-error",
                "one or more fields are invalid".to_owned(),
                Some(errs.clone()),
            ),
            ApiError::BadRequest(d) => ("bad-request", d.clone(), None),
            ApiError::UnsupportedMediaType(d) => ("unsupported-media-type", d.clone(), None),
            ApiError::PayloadTooLarge => (
                "payload-too-large",
                "request body exceeds the size limit".to_owned(),
                None,
            ),
            ApiError::Unauthorized(d) => ("unauthorized", d.clone(), None),
            ApiError::Forbidden(d) => ("forbidden", d.clone(), None),
            ApiError::TooManyRequests(after) => (
                "too-many-requests",
                format!(
                    "too many log-in attempts; retry in {} s",
                    after.as_secs().max(1)
                ),
                None,
            ),
            ApiError::NotFound(d) => ("not-found", d.clone(), None),
            ApiError::MethodNotAllowed => (
                "method-not-allowed",
                "this method is not allowed on this resource".to_owned(),
                None,
            ),
            ApiError::Conflict(d) => ("conflict", d.clone(), None),
            ApiError::Unavailable(d) => ("service-unavailable", d.clone(), None),
            ApiError::Internal(_) => (
                "internal-error",
                "an unexpected error occurred".to_owned(),
                None,
            ),
        };
        Problem {
            type_: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

/// Render a problem document as an HTTP response.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(msg) => crate::request_log::current(|r| {
                tracing::error!(
                    error = %msg,
                    request_id = r.map(|r| r.request_id.as_str()),
                    method = r.map(|r| r.method.as_str()),
                    path = r.map(|r| r.path.as_str()),
                    "internal error"
                )
            }),
            ApiError::Unavailable(msg) => crate::request_log::current(|r| {
                tracing::warn!(
                    error = %msg,
                    request_id = r.map(|r| r.request_id.as_str()),
                    method = r.map(|r| r.method.as_str()),
                    path = r.map(|r| r.path.as_str()),
                    "backing service unavailable"
                )
            }),
            _ => {}
        }
        let mut resp = problem_response(&self.to_problem());
        match &self {
            ApiError::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests(after) => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(after.as_secs().max(1)),
                );
            }
            _ => {}
        }
        resp
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::NotFound("no such user".to_owned()),
            DbError::DuplicateEmail => {
                ApiError::Conflict("a user with this email already exists".to_owned())
            }
            DbError::Unavailable(m) => ApiError::Unavailable(format!("database unavailable: {m}")),
            DbError::Other(m) => ApiError::Internal(m),
        }
    }
}

impl From<crate::login_limit::LimitError> for ApiError {
    fn from(e: crate::login_limit::LimitError) -> Self {
        match e {
            crate::login_limit::LimitError::Db(e) => e.into(),
            crate::login_limit::LimitError::Redis(e) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected request with `Content-Type: application/json`".to_owned(),
            ),
            JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
            JsonRejection::JsonDataError(e) => {
                ApiError::Validation(vec![FieldError::new("body", "type", e.body_text())])
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

/// Fallback for unknown routes: 404 problem.
pub async fn not_found_fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// Fallback for known routes with a wrong method: 405 problem.
pub async fn method_not_allowed_fallback() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Response for a panic caught by `tower_http::catch_panic`: logs, 500 problem.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = if let Some(s) = err.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = err.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "unknown panic payload".to_owned()
    };
    crate::request_log::current(|r| {
        tracing::error!(
            panic = %msg,
            request_id = r.map(|r| r.request_id.as_str()),
            method = r.map(|r| r.method.as_str()),
            path = r.map(|r| r.path.as_str()),
            "handler panicked"
        )
    });
    problem_response(&ApiError::Internal(msg).to_problem())
}
