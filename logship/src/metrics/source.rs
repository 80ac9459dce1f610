//! `<source> @type prometheus` (fluent-plugin-prometheus's input) and `<source> @type
//! monitor_agent` (Fluentd's): their parameters, and how they start the monitor's HTTP server
//! ([`super::server`]). See `docs/metrics.md`.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::params::{ParamSpec, NOT_IMPLEMENTED};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::BoxFuture;
use crate::source::{SourceContext, SourcePlugin, SourceRole};

/// Which Fluentd plugin a monitor source is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorKind {
    /// fluent-plugin-prometheus's `<source> @type prometheus` (port 24231).
    Prometheus,
    /// Fluentd's `<source> @type monitor_agent` (port 24220, `/api/plugins.json`).
    MonitorAgent,
}

impl MonitorKind {
    pub fn type_name(self) -> &'static str {
        match self {
            MonitorKind::Prometheus => "prometheus",
            MonitorKind::MonitorAgent => "monitor_agent",
        }
    }
}

/// A monitor source, checked: serves `/metrics` (Prometheus text format), `/healthz` and, for
/// `monitor_agent`, `/api/plugins.json`.
#[derive(Debug, Clone)]
pub struct MonitorSourceConfig {
    pub kind: MonitorKind,
    pub bind: String,
    pub port: u16,
    /// Path of the Prometheus exposition (`metrics_path`, default `/metrics`).
    pub metrics_path: String,
    /// `aggregated_metrics_path` (prometheus only): the same exposition (one worker).
    pub aggregated_metrics_path: Option<String>,
    /// logship's own: an output whose requests have only failed for this long makes
    /// `/healthz` answer 503 (default 60 s).
    pub health_failing_after: Duration,
}

const NO_EVENTS: &str = "the source emits no events, so there is nothing to label";
const HEALTH_DOC: &str =
    "logship's own: `/healthz` answers 503 once an output's requests have only failed for this long";

static PROMETHEUS_PARAMS: &[ParamSpec] = &[
    ParamSpec::string("bind")
        .default("0.0.0.0")
        .doc("address to listen on"),
    ParamSpec::port("port").default("24231").doc("HTTP port"),
    ParamSpec::string("metrics_path")
        .default("/metrics")
        .doc("path of the Prometheus exposition"),
    ParamSpec::string("aggregated_metrics_path")
        .default("/aggregated_metrics")
        .doc("the same exposition (logship is one worker)"),
    ParamSpec::time("health_failing_after")
        .default("60s")
        .doc(HEALTH_DOC),
    ParamSpec::string("@label").not_supported(NO_EVENTS),
];

static MONITOR_AGENT_PARAMS: &[ParamSpec] = &[
    ParamSpec::string("bind")
        .default("0.0.0.0")
        .doc("address to listen on"),
    ParamSpec::port("port").default("24220").doc("HTTP port"),
    ParamSpec::time("health_failing_after")
        .default("60s")
        .doc(HEALTH_DOC),
    ParamSpec::string("tag").not_supported(
        "logship does not emit metrics as events; scrape /api/plugins.json or /metrics instead",
    ),
    ParamSpec::time("emit_interval").no_effect("metrics are not emitted as events (see `tag`)"),
    ParamSpec::bool("include_config")
        .default("false")
        .no_effect("`/api/plugins.json` has no config object"),
    ParamSpec::bool("include_retry")
        .default("false")
        .no_effect(NOT_IMPLEMENTED),
    ParamSpec::string("@label").not_supported(NO_EVENTS),
];

/// `@type prometheus`.
pub static PROMETHEUS: PluginSpec<dyn SourcePlugin> = PluginSpec {
    type_name: "prometheus",
    summary: "Serves `/metrics` (Prometheus text format) and `/healthz` (fluent-plugin-prometheus's input); see [metrics.md](metrics.md).",
    params: PROMETHEUS_PARAMS,
    sections: &[],
    parse: parse_prometheus,
};

/// `@type monitor_agent`.
pub static MONITOR_AGENT: PluginSpec<dyn SourcePlugin> = PluginSpec {
    type_name: "monitor_agent",
    summary: "Serves Fluentd's `/api/plugins.json`, and `/metrics` and `/healthz`; see [metrics.md](metrics.md).",
    params: MONITOR_AGENT_PARAMS,
    sections: &[],
    parse: parse_monitor_agent,
};

/// A path parameter: must start with `/`, plain characters, and not shadow the fixed paths.
fn path_param(s: &mut Section<'_, '_>, name: &'static str) -> String {
    let v: String = s.get(name);
    let v = v.trim().to_string();
    let plain = v
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/_.-~".contains(&c));
    if !v.starts_with('/') || !plain || v == "/healthz" || v == "/api/plugins.json" {
        let loc = s
            .given(name)
            .map_or(s.element().loc.clone(), |p| p.loc.clone());
        let msg = format!(
            "parameter '{name}' in {}: must be a path starting with '/' (letters, digits, '/', '_', '.', '-', '~'; not /healthz or /api/plugins.json), got {v:?}",
            s.what()
        );
        s.error(&loc, msg);
    }
    v
}

fn parse_prometheus(s: &mut Section<'_, '_>) -> Arc<dyn SourcePlugin> {
    let cfg = MonitorSourceConfig {
        kind: MonitorKind::Prometheus,
        bind: s.get("bind"),
        port: s.get("port"),
        metrics_path: path_param(s, "metrics_path"),
        aggregated_metrics_path: Some(path_param(s, "aggregated_metrics_path")),
        health_failing_after: s.get("health_failing_after"),
    };
    if cfg.aggregated_metrics_path.as_deref() == Some(cfg.metrics_path.as_str()) {
        s.error_here(format!(
            "metrics_path and aggregated_metrics_path are both {:?}",
            cfg.metrics_path
        ));
    }
    Arc::new(cfg)
}

fn parse_monitor_agent(s: &mut Section<'_, '_>) -> Arc<dyn SourcePlugin> {
    Arc::new(MonitorSourceConfig {
        kind: MonitorKind::MonitorAgent,
        bind: s.get("bind"),
        port: s.get("port"),
        metrics_path: "/metrics".into(),
        aggregated_metrics_path: None,
        health_failing_after: s.get("health_failing_after"),
    })
}

impl SourcePlugin for MonitorSourceConfig {
    fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    fn role(&self) -> SourceRole {
        SourceRole::Monitor
    }

    fn describe(&self) -> String {
        format!(
            "{} {}:{} (GET {}, /healthz{})",
            self.kind.type_name(),
            self.bind,
            self.port,
            self.metrics_path,
            if self.kind == MonitorKind::MonitorAgent {
                ", /api/plugins.json"
            } else {
                ""
            }
        )
    }

    fn start<'a>(
        &'a self,
        ctx: SourceContext<'a>,
    ) -> BoxFuture<'a, Result<JoinHandle<()>, String>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind((self.bind.as_str(), self.port))
                .await
                .map_err(|e| {
                    format!(
                        "cannot listen on {}:{} (source at {}): {e}",
                        self.bind, self.port, ctx.loc
                    )
                })?;
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(address = %addr, source = self.kind.type_name(), plugin_id = %ctx.id, "listening");
            }
            let (cfg, monitor) = (self.clone(), ctx.monitor.clone());
            let shutdown = ctx.shutdown.clone();
            let serving =
                async move { super::server::serve(listener, &cfg, monitor, shutdown).await };
            let type_name = self.kind.type_name();
            Ok(ctx.spawn_listed(type_name, None, "monitor server", serving))
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn monitor_sources_have_fluentds_defaults() {
        let c = Config::from_str_at("<source>\n  @type prometheus\n</source>\n<source>\n  @type monitor_agent\n  bind 127.0.0.1\n</source>\n", std::path::Path::new("t.conf")).unwrap();
        let m: Vec<&MonitorSourceConfig> = c
            .sources
            .iter()
            .map(|s| s.config::<MonitorSourceConfig>().unwrap())
            .collect();
        assert_eq!(m[0].kind, MonitorKind::Prometheus);
        assert_eq!((m[0].bind.as_str(), m[0].port), ("0.0.0.0", 24231));
        assert_eq!(m[0].metrics_path, "/metrics");
        assert_eq!(
            m[0].aggregated_metrics_path.as_deref(),
            Some("/aggregated_metrics")
        );
        assert_eq!(m[0].health_failing_after, Duration::from_secs(60));
        assert_eq!(m[1].kind, MonitorKind::MonitorAgent);
        assert_eq!((m[1].bind.as_str(), m[1].port), ("127.0.0.1", 24220));
        assert_eq!(m[1].aggregated_metrics_path, None);
        let e = Config::from_str_at(
            "<source>\n  @type prometheus\n  @label @X\n</source>\n<label @X>\n</label>\n",
            std::path::Path::new("t.conf"),
        )
        .unwrap_err();
        assert!(
            e[0].to_string().starts_with(
                "t.conf:3: parameter '@label' in <source> (@type prometheus) is not supported: the source emits no events"
            ),
            "{}",
            e[0]
        );
    }
}
