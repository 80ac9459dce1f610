//! `logship run [-c FILE]`: builds the pipeline, starts the Forward inputs and serves until
//! SIGTERM or SIGINT; then stops accepting, lets connections finish their frame, flushes held
//! partial lines and every output, and returns (exit 0).
//!
//! Each input logs `{"message":"listening","address":"IP:PORT","source":"forward",...}` on
//! stderr once bound, so a config with `port 0` can be used and the chosen port read from the
//! log. Monitor sources (`@type prometheus` / `monitor_agent`, see [`crate::metrics`]) log the
//! same line with `"source":"prometheus"` (or `monitor_agent`); they are bound and serving
//! before any Forward input accepts, and stop last, after the outputs have flushed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, ForwardSourceConfig, SourcePlugin, DEFAULT_CONFIG};
use crate::event::EventSink;
use crate::forward::admission::default_max_connections;
use crate::forward::server::{ForwardListeners, ForwardServer, ForwardServerConfig, TlsConfig};
use crate::forward::{ClientRule, SecurityConfig, UserCredential};
use crate::memory_budget::{MemoryBudget, DEFAULT_MEMORY_BUDGET};
use crate::metrics::plugin::{Category, PluginIds};
use crate::metrics::{InputEntry, Monitor};
use crate::pipeline::{LabelSink, Router};

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

/// Maps `<source> @type forward` parameters onto the forward server's settings.
/// `default_max_connections` is this source's share of the connection cap that the open-file
/// limit allows (see [`run_config`]).
pub fn forward_server_config(
    f: &ForwardSourceConfig,
    default_max_connections: usize,
) -> anyhow::Result<ForwardServerConfig> {
    let mut c = ForwardServerConfig {
        bind: f.bind.clone(),
        port: f.port,
        max_connections: f.max_connections.unwrap_or(default_max_connections),
        ..Default::default()
    };
    if let Some(limit) = f.chunk_size_limit {
        c.chunk_size_limit = usize::try_from(limit).unwrap_or(usize::MAX);
    }
    c.chunk_size_warn_limit = f
        .chunk_size_warn_limit
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    if let Some(t) = f.read_timeout {
        c.read_timeout = t;
    }
    if let Some(t) = f.handshake_timeout {
        c.handshake_timeout = t;
    }
    if let Some(r) = f.min_receive_rate {
        c.min_receive_rate = r;
    }
    if let Some(r) = f.max_decompression_ratio {
        c.max_decompression_ratio = r;
    }
    c.tag = f.tag.clone();
    c.add_tag_prefix = f.add_tag_prefix.clone();
    c.source_hostname_key = f.source_hostname_key.clone();
    c.resolve_hostname = f.resolve_hostname;
    c.source_address_key = f.source_address_key.clone();
    c.skip_invalid_event = f.skip_invalid_event;
    c.deny_keepalive = f.deny_keepalive;
    c.linger_timeout = f.linger_timeout;
    c.send_keepalive_packet = f.send_keepalive_packet;
    if let Some(s) = &f.security {
        c.security = Some(SecurityConfig {
            shared_key: s.shared_key.clone(),
            self_hostname: s.self_hostname.clone(),
            users: if s.user_auth {
                s.users
                    .iter()
                    .map(|(u, p)| UserCredential {
                        username: u.clone(),
                        password: p.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            clients: s
                .clients
                .iter()
                .map(|c| ClientRule {
                    network: c.network,
                    shared_key: c.shared_key.clone(),
                    users: c.users.clone(),
                })
                .collect(),
            allow_anonymous_source: s.allow_anonymous_source,
            ..Default::default()
        });
    }
    if let Some(t) = &f.tls {
        let cert = t
            .cert_path
            .clone()
            .context("<transport tls> needs cert_path")?;
        let key = t
            .private_key_path
            .clone()
            .context("<transport tls> needs private_key_path")?;
        c.tls = Some(TlsConfig {
            cert_path: cert.into(),
            key_path: key.into(),
        });
    }
    Ok(c)
}

/// Runs until `shutdown` is cancelled (by a signal in the binary, by the test otherwise).
///
/// Sets the process memory budget from `<system> memory_budget`, and gives each Forward
/// source without `max_connections` an equal share of the connection cap that the open-file
/// limit allows (the file descriptors are the process's, whichever source uses them).
pub async fn run_config(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let budget = cfg.system.memory_budget.unwrap_or(DEFAULT_MEMORY_BUDGET);
    MemoryBudget::global().set_limit(budget);
    tracing::info!(memory_budget = budget, "memory budget set");
    let forward_sources = cfg
        .sources
        .iter()
        .filter(|s| matches!(s.plugin, SourcePlugin::Forward(_)))
        .count()
        .max(1);
    let share = (default_max_connections() / forward_sources).max(1);
    let router = Router::build(&cfg).map_err(errors_to_anyhow)?;
    let timers = router.spawn_timers(shutdown.child_token());
    let monitor = Monitor::new(router.clone());
    let mut ids = PluginIds::default();
    let ids: Vec<String> = cfg
        .sources
        .iter()
        .map(|s| ids.id(s.id.as_deref(), Category::Input, s.plugin.type_name()))
        .collect();
    // Monitor sources first, so that /metrics and /healthz answer before any input accepts.
    let monitor_stop = CancellationToken::new();
    let mut monitor_servers = Vec::new();
    for (position, (src, id)) in cfg.sources.iter().zip(&ids).enumerate() {
        let SourcePlugin::Monitor(m) = &src.plugin else {
            continue;
        };
        let listener = tokio::net::TcpListener::bind((m.bind.as_str(), m.port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{} (source at {})",
                    m.bind, m.port, src.loc
                )
            })?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(address = %addr, source = m.kind.type_name(), plugin_id = %id, "listening");
        }
        let listening = Arc::new(std::sync::atomic::AtomicBool::new(true));
        monitor.add_input(InputEntry {
            id: id.clone(),
            type_name: m.kind.type_name(),
            forward: None,
            listening: listening.clone(),
            position,
        });
        let (m, mon, sd) = (m.clone(), monitor.clone(), monitor_stop.clone());
        monitor_servers.push(tokio::spawn(async move {
            let r = crate::metrics::server::serve(listener, &m, mon, sd).await;
            listening.store(false, std::sync::atomic::Ordering::Release);
            if let Err(e) = r {
                tracing::error!(error = %e, "monitor server failed");
            }
        }));
    }
    let sampler =
        (!monitor_servers.is_empty()).then(|| monitor.spawn_sampler(monitor_stop.clone()));
    let mut servers = Vec::new();
    for (position, (src, id)) in cfg.sources.iter().zip(&ids).enumerate() {
        let SourcePlugin::Forward(f) = &src.plugin else {
            continue;
        };
        let scfg =
            forward_server_config(f, share).with_context(|| format!("source at {}", src.loc))?;
        let listeners = ForwardListeners::bind(&scfg).await.with_context(|| {
            format!(
                "cannot listen on {}:{} (source at {})",
                scfg.bind, scfg.port, src.loc
            )
        })?;
        let server =
            ForwardServer::new(scfg.clone()).with_context(|| format!("source at {}", src.loc))?;
        let listening = Arc::new(std::sync::atomic::AtomicBool::new(true));
        monitor.add_input(InputEntry {
            id: id.clone(),
            type_name: "forward",
            forward: Some(server.metrics()),
            listening: listening.clone(),
            position,
        });
        if let Some(addr) = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok()) {
            tracing::info!(address = %addr, source = "forward", plugin_id = %id, label = src.label.as_deref().unwrap_or("(root)"), "listening");
        }
        let sink: Arc<dyn EventSink> = match &src.label {
            Some(l) => Arc::new(LabelSink {
                router: router.clone(),
                label: l.clone(),
            }),
            None => router.clone(),
        };
        let sd = shutdown.clone();
        servers.push(tokio::spawn(async move {
            let r = server.run(listeners, sink, sd).await;
            listening.store(false, std::sync::atomic::Ordering::Release);
            r
        }));
    }
    tracing::info!(sources = cfg.sources.len(), "logship running");
    shutdown.cancelled().await;
    tracing::info!("shutting down: no longer accepting connections");
    for s in servers {
        match s.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "forward input failed"),
            Err(e) => tracing::error!(error = %e, "forward input task panicked"),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), timers).await;
    router.shutdown().await;
    monitor_stop.cancel();
    for s in monitor_servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    if let Some(s) = sampler {
        let _ = s.await;
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "signal received"),
        _ = term => tracing::info!(signal = "SIGTERM", "signal received"),
    }
}

/// `logship run`: serve `cfg` (see [`load`]) until a signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let sd = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        sd.cancel();
    });
    run_config(cfg, shutdown).await
}
