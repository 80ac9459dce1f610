//! The start-up check: `GET /` on every host as soon as the output starts, so that a
//! configuration that cannot work is reported at once, not at the first flush a minute later.
//!
//! | answer | log |
//! |---|---|
//! | 2xx | INFO `connected to Elasticsearch` with the engine and version, and the credentials used (user or key id) |
//! | TLS failure, 401, client certificate missing or refused | ERROR with `cause` and `fix` (the parameter to change), see [`super::diagnose`] |
//! | 403 | WARN: the user may lack the `monitor` privilege for `GET /` and still be allowed to write |
//! | no answer (refused, timeout) | WARN: Elasticsearch is down; events are buffered and retried |
//!
//! The check never stops logship: the buffer takes events meanwhile (with a file buffer they
//! survive a restart with the fixed configuration), and every flush repeats the diagnosis.
//! The flush workers wait for it (all hosts are checked at once, each within the connect
//! timeout, at most 10 s), so that its verdict is the first line about the connection and its
//! request the first one a host sees.

use std::sync::Arc;

use super::diagnose::ConfigProblem;
use super::engine::EngineInfo;
use super::service::Service;

/// Checks every host once, logs the outcomes (see the module docs), then lets the flush
/// workers go.
pub async fn startup(service: Arc<Service>) {
    // Lets the workers go however this ends (a panic included).
    struct Done(Arc<Service>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.checked.send_replace(true);
        }
    }
    let _done = Done(service.clone());
    let mut hosts = tokio::task::JoinSet::new();
    for i in 0..service.http.configured_hosts() {
        hosts.spawn(check_host(service.clone(), i));
    }
    while hosts.join_next().await.is_some() {}
}

/// `GET /` on host `i`, and the log line that says what it means.
async fn check_host(service: Arc<Service>, i: usize) {
    let http = &service.http;
    let output = &service.name;
    let cx = http.context(http.configured_host(i));
    let host = cx.url;
    match http.get_from(i, "").await {
        Ok(r) if (200..300).contains(&r.status) => {
            let engine = EngineInfo::from_root(&r.body, r.product.as_deref()).ok();
            tracing::info!(
                output = %output,
                host,
                version = engine.as_ref().map_or("unknown".into(), EngineInfo::describe),
                credentials = %cx.credentials.describe(),
                "connected to Elasticsearch"
            );
            // The answer is the version detection's too (one `GET /` at start, as the
            // plugin makes).
            if let (Some(engine), true) = (engine, service.settings.detect_version) {
                service.learn_engine(engine);
            }
        }
        Ok(r) => match http.problem(&r) {
            Some(p) if r.status == 403 => tracing::warn!(
                output = %output,
                host,
                cause = %p.cause,
                "the start-up check GET / was refused; writing may still be allowed (GET / needs the monitor cluster privilege)"
            ),
            Some(p) => refused(output, host, &p),
            None => tracing::warn!(
                output = %output,
                host,
                status = r.status,
                body = %String::from_utf8_lossy(&r.body[..r.body.len().min(300)]),
                "the start-up check GET / failed"
            ),
        },
        Err(e) => match e.problem {
            Some(p) => refused(output, host, &p),
            None => tracing::warn!(
                output = %output,
                host,
                error = %e.message,
                "Elasticsearch is not reachable at start; events are buffered and retried"
            ),
        },
    }
}

fn refused(output: &str, host: &str, p: &ConfigProblem) {
    tracing::error!(
        output,
        host,
        cause = %p.cause,
        fix = %p.fix,
        "Elasticsearch refuses logship: events are kept in the buffer until the configuration is fixed"
    );
}
