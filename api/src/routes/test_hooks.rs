//! Test-only routes, mounted only when `API_TEST_HOOKS=1` (off by default).
//!
//! They exist so the black-box tests can exercise behaviour that has no
//! natural trigger in production: `GET /__test/slow?ms=N` sleeps N ms (max
//! 60 s) for the graceful-shutdown test, `GET /__test/panic` panics for the
//! panic-recovery test. Never enable this in production.

use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::AppState;

/// Query of the slow route.
#[derive(Debug, Deserialize)]
pub struct SlowQuery {
    /// Milliseconds to sleep.
    #[serde(default)]
    pub ms: u64,
}

/// The test-only routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/__test/slow", get(slow))
        .route("/__test/panic", get(panic))
}

async fn slow(Query(q): Query<SlowQuery>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms.min(60_000))).await;
    "done"
}

async fn panic() -> &'static str {
    panic!("test hook panic")
}
