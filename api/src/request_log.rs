//! Per-request telemetry and request ids.
//!
//! Guarantee: every request gets a request id — the client's `X-Request-Id`
//! if it is 1–128 visible ASCII characters, else a UUID v4 — echoed in the
//! `X-Request-Id` response header; when the response is ready exactly one
//! bunyan line `request completed` is written to stdout with `request_id`,
//! `method`, `path`, `user_agent`, `db_backend`, `status` and `latency_ms`
//! (plus the bunyan fields `v`, `name`, `msg`, `level`, `time`, `hostname`,
//! `pid` and `process_type`), if the log filter enables INFO for this module.
//!
//! Why this line bypasses the tracing formatter: it is written on every
//! request, and a tracing span per request plus a formatted event cost
//! ~15 µs of CPU per request (see docs/api-bench.md). Here the fields are
//! serialized straight from borrowed values into one pre-sized buffer and
//! written with one `write` under the stdout lock (the lock every other log
//! line takes, so lines never interleave). Other log records of a request
//! (errors, the panic hook, `session created`, …) still go through tracing
//! and carry the request's fields from [`current`], a task-local set for the
//! duration of the request.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::config::Backend;

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What identifies the request being served, for log records written during it.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The request id (also in the `X-Request-Id` response header).
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Request path (no query string).
    pub path: String,
}

tokio::task_local! {
    static CURRENT: Arc<RequestMeta>;
}

/// Run `f` with the request being served by this task, if any.
pub fn current<R>(f: impl FnOnce(Option<&RequestMeta>) -> R) -> R {
    let mut f = Some(f);
    match CURRENT.try_with(|m| (f.take().expect("called once"))(Some(m.as_ref()))) {
        Ok(r) => r,
        Err(_) => (f.take().expect("called once"))(None),
    }
}

/// The request id of the request being served by this task ("" outside one).
pub fn current_request_id() -> String {
    current(|m| m.map(|m| m.request_id.clone()).unwrap_or_default())
}

/// The constant part of every request line, fixed at start-up.
#[derive(Debug)]
pub struct RequestLog {
    name: String,
    process_type: String,
    hostname: String,
    pid: u32,
    backend: Backend,
}

impl RequestLog {
    /// The request log of this process.
    pub fn new(name: &str, process_type: &str, backend: Backend) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            process_type: process_type.to_owned(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            backend,
        })
    }
}

/// One `request completed` line, in bunyan's field names.
#[derive(Serialize)]
struct Line<'a> {
    v: u8,
    name: &'a str,
    msg: &'static str,
    level: u8,
    time: String,
    hostname: &'a str,
    pid: u32,
    target: &'static str,
    process_type: &'a str,
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    user_agent: &'a str,
    db_backend: &'static str,
    status: u16,
    latency_ms: f64,
}

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// axum middleware: request id, task-local request fields, completion line.
pub async fn log_request(State(log): State<Arc<RequestLog>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let user_agent = req.headers().get(header::USER_AGENT).cloned();
    let meta = Arc::new(RequestMeta {
        request_id,
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
    });
    let mut response = CURRENT.scope(meta.clone(), next.run(req)).await;
    if tracing::enabled!(tracing::Level::INFO) {
        let line = Line {
            v: 0,
            name: &log.name,
            msg: "request completed",
            level: 30,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            hostname: &log.hostname,
            pid: log.pid,
            target: module_path!(),
            process_type: &log.process_type,
            request_id: &meta.request_id,
            method: &meta.method,
            path: &meta.path,
            user_agent: user_agent
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            db_backend: log.backend.as_str(),
            status: response.status().as_u16(),
            latency_ms: start.elapsed().as_secs_f64() * 1000.0,
        };
        let mut buf = Vec::with_capacity(384);
        if serde_json::to_writer(&mut buf, &line).is_ok() {
            buf.push(b'\n');
            let _ = std::io::stdout().lock().write_all(&buf);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&meta.request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}
