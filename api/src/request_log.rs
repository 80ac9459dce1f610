//! Per-request telemetry and request ids.
//!
//! Guarantee: every request runs inside an `http_request` span carrying
//! `request_id`, `method`, `path`, `user_agent` and `db_backend`; when the
//! response is ready exactly one `request completed` event is logged with
//! `status` and `latency_ms`, and the request id is echoed in the
//! `X-Request-Id` response header. That event is the request's only log line (the span
//! logs no START/END lines, see [`crate::telemetry`]). A client-supplied `X-Request-Id` (1–128
//! visible ASCII characters) is kept, otherwise a UUID v4 is generated.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::config::Backend;

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// axum middleware: wrap the request in a span and log its completion.
pub async fn log_request(State(backend): State<Backend>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // The name must stay `telemetry::REQUEST_SPAN` (a literal: the macro needs one).
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        user_agent = %user_agent,
        db_backend = backend.as_str(),
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, latency_ms, "request completed"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}
