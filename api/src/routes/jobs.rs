//! `POST /users/import` (queue a bulk import) and `GET /jobs/{id}`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::require_session;
use super::AppState;
use crate::error::{ApiError, Problem};
use crate::jobs::{check_payload, Format, Job};
use crate::validation::FieldError;

/// Maximum body of `POST /users/import` (64 MiB).
pub const IMPORT_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Answer of `POST /users/import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCreated {
    /// The queued job; poll `GET /jobs/{id}`.
    pub job_id: i64,
}

/// Queue a bulk import of users (NDJSON or CSV), processed by `api worker`.
#[utoipa::path(post, path = "/users/import", tag = "jobs",
    security(("bearer" = [])),
    request_body(content = String, description = "NDJSON (`application/x-ndjson`: one `{\"name\",\"email\",\"password\"?}` per line) or CSV (`text/csv`, header `name,email[,password]`), at most 64 MiB",
        content_type = "application/x-ndjson"),
    responses(
        (status = 202, description = "Queued; Location points at the job", body = JobCreated),
        (status = 401, description = "Missing, expired or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 64 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither NDJSON nor CSV", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not UTF-8, bad CSV header or no records", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn import_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_session(&state, &headers).await?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match ct.as_str() {
        "application/x-ndjson" | "application/ndjson" => Format::Ndjson,
        "text/csv" => Format::Csv,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "expected `Content-Type: application/x-ndjson` or `text/csv`".to_owned(),
            ))
        }
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let total = check_payload(format, &body)
        .map_err(|m| ApiError::Validation(vec![FieldError::new("body", "format", m)]))?;
    if total == 0 {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "length",
            "contains no records",
        )]));
    }
    let id = state
        .db
        .enqueue_import(format, body.to_vec(), total, state.job_max_attempts)
        .await?;
    tracing::info!(
        job_id = id,
        records = total,
        format = format.as_str(),
        "import queued"
    );
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/jobs/{id}"))],
        Json(JobCreated { job_id: id }),
    )
        .into_response())
}

/// State and progress of a job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Job>, ApiError> {
    let Path(id) = id?;
    let row = state
        .db
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such job".to_owned()))?;
    Ok(Json(row.into()))
}
