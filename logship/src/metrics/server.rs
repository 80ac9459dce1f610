//! The monitor's HTTP server (axum on Tokio), one per `<source> @type prometheus` /
//! `@type monitor_agent`.
//!
//! | path | answer |
//! | --- | --- |
//! | `metrics_path` (default `/metrics`), and `aggregated_metrics_path` | the exposition, `text/plain; version=0.0.4` |
//! | `/healthz` | `200 {"status":"ok"}` or `503 {"status":"failing","reasons":[...]}` (see [`super::health`]) |
//! | `/api/plugins.json` (`monitor_agent` only) | Fluentd's per-plugin JSON |
//!
//! Anything else is a 404; methods other than GET (and HEAD) a 405.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::source::{MonitorKind, MonitorSourceConfig};
use super::{registry, Monitor};

struct Shared {
    monitor: Arc<Monitor>,
    registry: Registry,
    failing_after: Duration,
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let body = registry::encode(&s.registry);
    ([(header::CONTENT_TYPE, registry::CONTENT_TYPE)], body).into_response()
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    match s.monitor.health(s.failing_after) {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "failing", "reasons": reasons})),
        )
            .into_response(),
    }
}

async fn plugins(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(registry::plugins_json(&s.monitor)).into_response()
}

/// The routes of one monitor source.
pub fn app(cfg: &MonitorSourceConfig, monitor: Arc<Monitor>) -> axum::Router {
    let shared = Arc::new(Shared {
        registry: registry::registry(monitor.clone()),
        monitor,
        failing_after: cfg.health_failing_after,
    });
    let mut r = axum::Router::new()
        .route(&cfg.metrics_path, get(metrics))
        .route("/healthz", get(healthz));
    if let Some(p) = &cfg.aggregated_metrics_path {
        if p != "/healthz" {
            r = r.route(p, get(metrics));
        }
    }
    if cfg.kind == MonitorKind::MonitorAgent {
        r = r.route("/api/plugins.json", get(plugins));
    }
    r.with_state(shared)
}

/// Serves `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    cfg: &MonitorSourceConfig,
    monitor: Arc<Monitor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(cfg, monitor))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
