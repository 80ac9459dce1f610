//! OpenAPI document generated from the handlers' annotations (utoipa).
//!
//! Guarantee: `/openapi.json` is derived from the same code that serves the
//! routes, so paths, parameters and schemas cannot drift from the
//! implementation.

use std::sync::OnceLock;

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
    info(title = "api", description = "12-factor users REST service.\n\n\
Every error is an RFC 9457 problem document (`application/problem+json`). Every response \
carries `X-Request-Id`. A method a path does not support is answered 405 with `Allow`; an \
unknown path 404. Authorization: `PATCH`/`DELETE /users/{id}` only for the account's owner \
or an admin (403 otherwise); imports and jobs only for admins. The admin role is granted \
only by the admin process `api users promote EMAIL`."),
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
        jobs::ImportRecord,
        jobs::ImportRecords,
        crate::jobs::Job,
        crate::jobs::Progress,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "users", description = "Users CRUD (PATCH and DELETE need a bearer token: the owner's or an admin's)"),
        (name = "sessions", description = "Log in and out (bearer tokens)"),
        (name = "jobs", description = "Bulk imports processed by `api worker` (admins only)"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "Service description"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once per process.
///
/// utoipa 5.5 serializes Link objects with snake_case keys (`operation_id`,
/// `operation_ref`, `request_body`); OpenAPI says `operationId`,
/// `operationRef`, `requestBody`, and tools ignore links spelled otherwise,
/// so they are renamed here.
pub fn document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
            let links = paths
                .values_mut()
                .filter_map(|item| item.as_object_mut())
                .flat_map(|item| item.values_mut())
                .filter_map(|op| op.get_mut("responses")?.as_object_mut())
                .flat_map(|responses| responses.values_mut())
                .filter_map(|r| r.get_mut("links")?.as_object_mut())
                .flat_map(|links| links.values_mut())
                .filter_map(|l| l.as_object_mut());
            for link in links {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(v) = link.remove(from) {
                        link.insert(to.to_owned(), v);
                    }
                }
            }
        }
        doc
    })
}

/// This document, as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<&'static serde_json::Value> {
    Json(document())
}
