//! `logship run [-c FILE]`: builds the pipeline, starts the Forward inputs and serves until
//! SIGTERM or SIGINT; then stops accepting, lets connections finish their frame, flushes held
//! partial lines and every output, and returns (exit 0).
//!
//! Each input logs `{"message":"listening","address":"IP:PORT",...}` on stderr once bound, so
//! a config with `port 0` can be used and the chosen port read from the log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, ForwardSourceConfig, SourcePlugin, DEFAULT_CONFIG};
use crate::event::EventSink;
use crate::forward::server::{ForwardListeners, ForwardServerConfig, TlsConfig};
use crate::forward::{SecurityConfig, UserCredential};
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
pub fn forward_server_config(f: &ForwardSourceConfig) -> anyhow::Result<ForwardServerConfig> {
    let mut c = ForwardServerConfig {
        bind: f.bind.clone(),
        port: f.port,
        ..Default::default()
    };
    if let Some(limit) = f.chunk_size_limit {
        c.chunk_size_limit = usize::try_from(limit).unwrap_or(usize::MAX);
    }
    if let Some(t) = f.read_timeout {
        c.read_timeout = t;
    }
    if let Some(m) = f.max_connections {
        c.max_connections = m;
    }
    c.tag = f.tag.clone();
    c.add_tag_prefix = f.add_tag_prefix.clone();
    c.source_hostname_key = f.source_hostname_key.clone();
    c.source_address_key = f.source_address_key.clone();
    c.skip_invalid_event = f.skip_invalid_event;
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
pub async fn run_config(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let router = Router::build(&cfg).map_err(errors_to_anyhow)?;
    let timers = router.spawn_timers(shutdown.child_token());
    let mut servers = Vec::new();
    for src in &cfg.sources {
        let SourcePlugin::Forward(f) = &src.plugin;
        let scfg = forward_server_config(f).with_context(|| format!("source at {}", src.loc))?;
        let listeners = ForwardListeners::bind(&scfg).await.with_context(|| {
            format!(
                "cannot listen on {}:{} (source at {})",
                scfg.bind, scfg.port, src.loc
            )
        })?;
        if let Some(addr) = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok()) {
            tracing::info!(address = %addr, label = src.label.as_deref().unwrap_or("(root)"), "listening");
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
            crate::forward::server::run(listeners, scfg, sink, sd).await
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
