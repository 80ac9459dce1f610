//! OpenAPI document generated from the handlers' annotations (utoipa).
//!
//! Guarantee: `/openapi.json` is derived from the same code that serves the
//! routes, so paths, parameters and schemas cannot drift from the
//! implementation.

use axum::Json;
use utoipa::OpenApi;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

use super::{health, jobs, sessions, users};

/// Adds the `bearer` security scheme used by the authenticated endpoints.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Token from POST /sessions"))
                    .build(),
            ),
        );
    }
}

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
        jobs::import_users,
        jobs::get_job,
        sessions::create_session,
        sessions::delete_session,
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
        sessions::Credentials,
        sessions::SessionToken,
        jobs::JobCreated,
        crate::jobs::Job,
        crate::jobs::Progress,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "users", description = "Users CRUD (PATCH and DELETE need a bearer token)"),
        (name = "sessions", description = "Log in and out (bearer tokens)"),
        (name = "jobs", description = "Bulk imports processed by `api worker`"),
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
