//! HTTP handlers and the router.
//!
//! Guarantee: [`router`] is the complete public surface of the service; every
//! route is documented in the generated OpenAPI (`/openapi.json`), except the
//! test-only hooks that exist only when `API_TEST_HOOKS=1`.

pub mod auth;
pub mod health;
pub mod jobs;
pub mod openapi;
pub mod sessions;
pub mod test_hooks;
pub mod users;

use axum::extract::rejection::JsonRejection;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use std::sync::Arc;

use ipnet::IpNet;

use crate::db::Db;
use crate::error::{self, ApiError};
use crate::login_limit::LoginLimiter;
use crate::sessions::SessionStore;
use crate::validation::FieldError;

/// Maximum accepted request body size (64 KiB; `POST /users/import` allows
/// 64 MiB); larger bodies get a 413 problem.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Shared state of all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Where sessions live (Redis or the database).
    pub sessions: SessionStore,
    /// `max_attempts` of newly queued jobs.
    pub job_max_attempts: i64,
    /// Log-in attempt counters.
    pub login_limiter: LoginLimiter,
    /// Proxies whose `X-Forwarded-For` is believed (see [`crate::client_addr`]).
    pub trusted_proxies: Arc<[IpNet]>,
}

/// The JSON body of a request, required to be an object.
pub type JsonObjectBody = Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>;

/// Deserialize a JSON object body into `T`. Unlike `Json<T>` this refuses a
/// JSON array (serde's derived struct impls accept `[a, b]` as the fields in
/// order), so the body is exactly what the schema says: an object (422
/// otherwise, like a wrongly typed field).
pub fn json_object<T: DeserializeOwned>(body: JsonObjectBody) -> Result<T, ApiError> {
    let Json(map) = body?;
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| ApiError::Validation(vec![FieldError::new("body", "type", e.to_string())]))
}

/// Build the router (without the request-logging and panic layers, which
/// [`crate::startup`] adds around it).
pub fn router(state: AppState, test_hooks: bool) -> Router {
    let mut r = Router::new()
        .route("/users", get(users::list_users).post(users::create_user))
        .route(
            "/users/{id}",
            get(users::get_user)
                .patch(users::update_user)
                .delete(users::delete_user),
        )
        .route(
            "/users/import",
            post(jobs::import_users).layer(DefaultBodyLimit::max(jobs::IMPORT_LIMIT_BYTES)),
        )
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/sessions", post(sessions::create_session))
        .route("/sessions/current", delete(sessions::delete_session))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json));
    if test_hooks {
        r = r.merge(test_hooks::router());
    }
    r.fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}
