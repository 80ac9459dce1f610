//! OpenAPI document generated from the handlers' annotations (utoipa).
//!
//! Guarantee: `/openapi.json` is derived from the same code that serves the
//! routes, so paths, parameters and schemas cannot drift from the
//! implementation.

use axum::Json;
use utoipa::OpenApi;

use super::{health, users};

/// The OpenAPI description of the service.
#[derive(OpenApi)]
#[openapi(
    info(title = "api", description = "12-factor users REST service"),
    paths(
        users::list_users,
        users::get_user,
        users::create_user,
        users::update_user,
        users::delete_user,
        health::healthz,
        health::readyz,
        openapi_json,
    ),
    components(schemas(
        crate::db::User,
        users::UserPage,
        users::NewUser,
        users::UserPatch,
        crate::error::Problem,
        crate::validation::FieldError,
        health::Status,
    )),
    tags(
        (name = "users", description = "Users CRUD"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "Service description"),
    )
)]
pub struct ApiDoc;

/// This document, as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
