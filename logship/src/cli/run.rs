//! `logship run [-c FILE]`: builds the pipeline, starts the Forward inputs and serves until
//! SIGTERM or SIGINT; then stops accepting, lets connections finish their frame, flushes held
//! partial lines and every output, and returns (exit 0).
//!
//! Each input logs `{"message":"listening","address":"IP:PORT","source":"forward",...}` on
//! stderr once bound, so a config with `port 0` can be used and the chosen port read from the
//! log. Monitor sources (`@type prometheus` / `monitor_agent`, see [`crate::metrics`]) log the
//! same line with `"source":"prometheus"` (or `monitor_agent`); they are bound and serving
//! before any Forward input accepts, and stop last, after the outputs have flushed (see
//! [`crate::source`]).
//!
//! Before anything starts, every configuration warning is logged once (WARN,
//! `"message":"configuration warning"` with `at` = `file:line`), and every parameter the
//! config gives that has no effect in logship is named once (INFO,
//! `"message":"configuration parameter has no effect in logship"`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG};
use crate::event::EventSink;
use crate::forward::admission::default_max_connections;
use crate::memory_budget::MemoryBudget;
use crate::metrics::plugin::{Category, PluginIds};
use crate::metrics::Monitor;
use crate::pipeline::{LabelSink, Router};
use crate::source::{SourceContext, SourceRole};

fn errors_to_anyhow(errors: Vec<ConfigError>) -> anyhow::Error {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("invalid configuration:\n{}", text.join("\n"))
}

/// Loads `path`, or the default config (forward on 127.0.0.1:24224 → stdout).
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::from_file(p).map_err(errors_to_anyhow),
        None => Config::from_str_at(DEFAULT_CONFIG, Path::new("<default config>"))
            .map_err(errors_to_anyhow),
    }
}

/// Runs until `shutdown` is cancelled (by a signal in the binary, by the test otherwise).
///
/// Sets the process memory budget from `<system> memory_budget`, and gives each event source
/// an equal share of the connection cap that the open-file limit allows (used by the ones
/// without `max_connections`).
pub async fn run_config(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    for w in &cfg.warnings {
        tracing::warn!(at = %w.loc, warning = %w.message, "configuration warning");
    }
    for line in cfg.no_effect_report() {
        tracing::info!(parameter = %line, "configuration parameter has no effect in logship");
    }
    MemoryBudget::global().set_limit(cfg.system.memory_budget);
    tracing::info!(
        memory_budget = cfg.system.memory_budget,
        "memory budget set"
    );
    let event_sources = cfg
        .sources
        .iter()
        .filter(|s| s.plugin.role() == SourceRole::Events)
        .count()
        .max(1);
    let connection_share = (default_max_connections() / event_sources).max(1);
    let router = Router::build(&cfg).map_err(errors_to_anyhow)?;
    let timers = router.spawn_timers(shutdown.child_token());
    let monitor = Monitor::new(router.clone());
    let mut ids = PluginIds::default();
    let ids: Vec<String> = cfg
        .sources
        .iter()
        .map(|s| ids.id(s.id.as_deref(), Category::Input, s.plugin.type_name()))
        .collect();
    // Monitor sources first, so that /metrics and /healthz answer before any input accepts;
    // they stop last, after the outputs have flushed.
    let monitor_stop = CancellationToken::new();
    let mut monitor_tasks = Vec::new();
    let mut sampler = None;
    let mut input_tasks = Vec::new();
    for role in [SourceRole::Monitor, SourceRole::Events] {
        for (position, (src, id)) in cfg.sources.iter().zip(&ids).enumerate() {
            if src.plugin.role() != role {
                continue;
            }
            let sink: Arc<dyn EventSink> = match &src.label {
                Some(l) => Arc::new(LabelSink {
                    router: router.clone(),
                    label: l.clone(),
                }),
                None => router.clone(),
            };
            let ctx = SourceContext {
                id,
                position,
                loc: &src.loc,
                label: src.label.as_deref(),
                monitor: &monitor,
                sink,
                shutdown: match role {
                    SourceRole::Monitor => monitor_stop.clone(),
                    SourceRole::Events => shutdown.clone(),
                },
                connection_share,
            };
            let task = src.plugin.start(ctx).await.map_err(anyhow::Error::msg)?;
            match role {
                SourceRole::Monitor => monitor_tasks.push(task),
                SourceRole::Events => input_tasks.push(task),
            }
        }
        if role == SourceRole::Monitor && !monitor_tasks.is_empty() {
            sampler = Some(monitor.spawn_sampler(monitor_stop.clone()));
        }
    }
    tracing::info!(sources = cfg.sources.len(), "logship running");
    shutdown.cancelled().await;
    tracing::info!("shutting down: no longer accepting connections");
    for t in input_tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "input task panicked");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), timers).await;
    router.shutdown().await;
    monitor_stop.cancel();
    for t in monitor_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if let Some(s) = sampler {
        let _ = s.await;
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// signal that arrives between start-up and the first poll (a SIGTERM right after the
/// "listening" line, on a busy machine) must not find the default action still in place,
/// which would kill the process without a drain.
pub fn wait_for_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let recv = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = recv(int) => tracing::info!(signal = "SIGINT", "signal received"),
            _ = recv(term) => tracing::info!(signal = "SIGTERM", "signal received"),
        }
    }
}

/// `logship run`: serve `cfg` (see [`load`]) until a signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let sd = shutdown.clone();
    let signal = wait_for_signal();
    tokio::spawn(async move {
        signal.await;
        sd.cancel();
    });
    run_config(cfg, shutdown).await
}
