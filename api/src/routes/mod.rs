//! HTTP handlers and the router.
//!
//! Guarantee: [`router`] is the complete public surface of the service; every
//! route is documented in the generated OpenAPI (`/openapi.json`), except the
//! test-only hooks that exist only when `API_TEST_HOOKS=1`.

pub mod health;
pub mod openapi;
pub mod test_hooks;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use crate::db::Db;
use crate::error;

/// Maximum accepted request body size (64 KiB); larger bodies get a 413 problem.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Shared state of all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
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
