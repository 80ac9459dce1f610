//! Liveness and readiness probes.
//!
//! Guarantee: `/healthz` answers 200 whenever the process can serve HTTP and
//! never touches the database; `/readyz` answers 200 only if a pooled
//! connection can run `SELECT 1` within [`READINESS_TIMEOUT`], otherwise a
//! 503 problem — it never hangs longer than that.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::error::{ApiError, Problem};

/// Upper bound for the readiness database check.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Probe result.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Process is alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database is reachable.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Database reachable", body = Status),
        (status = 503, description = "Database unreachable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state.db.ping(READINESS_TIMEOUT).await?;
    Ok(Json(Status { status: "ok" }))
}
