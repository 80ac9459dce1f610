//! `POST /users/import` (queue a bulk import) and `GET /jobs/{id}`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{forbidden, require_session};
use super::AppState;
use crate::error::{ApiError, Problem};
use crate::jobs::{check_payload, Format, Job};
use crate::request_log::current_request_id;
use crate::validation::FieldError;

/// Maximum body of `POST /users/import` (64 MiB).
pub const IMPORT_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Answer of `POST /users/import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCreated {
    /// The queued job; poll `GET /jobs/{id}`.
    pub job_id: i64,
}

/// One record of an import: the fields of `POST /users`.
///
/// NDJSON: one such object per line. CSV: a header line naming the columns
/// (`name,email[,password]`, any order), then one record per line, RFC 4180
/// quoting, no line breaks inside fields.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the worker parses records itself
pub struct ImportRecord {
    /// Display name.
    #[schema(schema_with = crate::routes::users::required_name_schema, required = true)]
    name: String,
    /// E-mail address; existing addresses are skipped.
    #[schema(schema_with = crate::routes::users::required_email_schema, required = true)]
    email: String,
    /// Optional password.
    #[schema(schema_with = crate::routes::users::optional_password_schema)]
    password: Option<String>,
}

/// The body of an import: at least one [`ImportRecord`] (documentation only).
pub struct ImportRecords;

impl utoipa::PartialSchema for ImportRecords {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("ImportRecord"))
            .min_items(Some(1))
            .description(Some("At least one record"))
            .into()
    }
}

impl ToSchema for ImportRecords {}

/// Queue a bulk import of users (NDJSON or CSV), processed by `api worker`
/// (admins only).
///
/// The upload is accepted as a whole: only its encoding (UTF-8), the CSV
/// header and the presence of at least one record are checked here. Each
/// record is then validated by the worker like `POST /users`; records that
/// fail are counted in the job's `progress.errors`, existing e-mail
/// addresses in `progress.skipped`, and neither fails the job.
#[utoipa::path(post, path = "/users/import", tag = "jobs",
    security(("bearer" = [])),
    request_body(
        description = "The records, at most 64 MiB: NDJSON (one JSON object per line) or CSV (header line, then one record per line)",
        content(
            (ImportRecords = "application/x-ndjson"),
            (ImportRecords = "text/csv"),
        )),
    responses(
        (status = 202, description = "Queued", body = JobCreated,
            headers(("Location" = String, description = "`/jobs/{id}` of the job")),
            links(("GetJob" = (operation_id = "get_job", parameters(("id" = "$response.body#/job_id")),
                description = "State and progress of the job")))),
        (status = 400, description = "The body could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, expired or revoked bearer token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 64 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither `application/x-ndjson` nor `text/csv`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not UTF-8, no CSV header with name and email, or no records", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn import_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = require_session(&state, &headers).await?;
    if !caller.is_admin() {
        return Err(forbidden("import users"));
    }
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
        request_id = %current_request_id(),
        "import queued"
    );
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/jobs/{id}"))],
        Json(JobCreated { job_id: id }),
    )
        .into_response())
}

/// State and progress of a job (admins only).
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 400, description = "The id is not a 64-bit integer", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, expired or revoked bearer token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Job>, ApiError> {
    let caller = require_session(&state, &headers).await?;
    let Path(id) = id?;
    if !caller.is_admin() {
        return Err(forbidden("read jobs"));
    }
    let row = state
        .db
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such job".to_owned()))?;
    Ok(Json(row.into()))
}
