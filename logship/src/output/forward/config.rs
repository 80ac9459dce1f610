//! `@type forward` output: its parameters (Fluentd's `out_forward`, as far as logship honours
//! them), read into a [`ForwardOutputConfig`].

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::config::BufferConfig;
use crate::config::params::{ParamSpec, SectionSpec, NOT_IMPLEMENTED};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::output::{Output, OutputContext, OutputPlugin};
use crate::secret::Secret;

/// `@type forward`, checked.
#[derive(Debug, Clone)]
pub struct ForwardOutputConfig {
    pub servers: Vec<ForwardServerTarget>,
    pub require_ack_response: bool,
    pub ack_response_timeout: Duration,
    pub send_timeout: Duration,
    /// `transport`, `tcp`, `udp` or `none`.
    pub heartbeat_type: String,
    /// `text` or `gzip`.
    pub compress: String,
    /// `send_metadata`: re-send Forward v1.5 metadata to the next hop. Off by default because
    /// Fluentd < 1.19 and Fluent Bit < 5 reject `[[time, metadata], record]`.
    pub send_metadata: bool,
    /// `<security>`'s key (a `<server>`'s own key wins).
    pub shared_key: Option<Secret>,
    pub self_hostname: Option<String>,
    pub buffer: Option<BufferConfig>,
    /// `transport tls`.
    pub tls: bool,
    /// PEM file with the CA certificates to trust (`tls_cert_path`).
    pub tls_cert_path: Option<String>,
    pub tls_verify_hostname: bool,
    pub tls_insecure_mode: bool,
    /// Time between heartbeats (`heartbeat_interval`).
    pub heartbeat_interval: Duration,
    /// How long a server must answer heartbeats before it takes traffic again.
    pub recover_wait: Duration,
}

/// A `<server>`.
#[derive(Debug, Clone)]
pub struct ForwardServerTarget {
    pub host: String,
    pub port: u16,
    pub name: Option<String>,
    pub weight: u32,
    pub standby: bool,
    pub shared_key: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

const DETECTION: &str =
    "a failed send or heartbeat marks a server down; `recover_wait` of good heartbeats brings it back";
const KEPT_OPEN: &str = "connections are always kept open and reused";
const NO_STARTUP_CHECK: &str =
    "servers are not checked at start-up: an unreachable one is marked down and retried";

static PARAMS: &[ParamSpec] = &[
    ParamSpec::bool("require_ack_response").default("false").doc("every message carries a `chunk` id; a chunk is delivered only once acked"),
    ParamSpec::time("ack_response_timeout").default("190s").doc("how long to wait for the acks of a chunk before resending it elsewhere"),
    ParamSpec::time("send_timeout").default("60s").doc("bound on connecting, the TLS and Forward handshakes, and each write"),
    ParamSpec::choice("compress", &["text", "gzip"]).default("text").doc("`gzip`: CompressedPackedForward"),
    ParamSpec::bool("send_metadata").default("false").doc("re-send Forward v1.5 metadata as `[[time, metadata], record]` (Fluentd < 1.19 and Fluent Bit < 5 reject it)"),
    ParamSpec::choice("heartbeat_type", &["transport", "tcp", "udp", "none"]).default("transport").doc("`tcp`, `transport`: a TCP connect; `udp`: a NUL datagram the server answers; `none`"),
    ParamSpec::time("heartbeat_interval").default("1s").doc("time between heartbeats (> 0)"),
    ParamSpec::time("recover_wait").default("10s").doc("heartbeats must succeed this long before a down server takes traffic again"),
    ParamSpec::choice("transport", &["tcp", "tls"]).default("tcp").doc("`tls`: TLS 1.2/1.3 (rustls)"),
    ParamSpec::string("tls_cert_path").doc("PEM file of the CA certificate(s) to trust (required with `tls` unless `tls_insecure_mode`)"),
    ParamSpec::bool("tls_verify_hostname").default("true").doc("`false`: the chain is still verified, the certificate's name is not"),
    ParamSpec::bool("tls_insecure_mode").default("false").doc("accept any certificate (testing only)"),
    ParamSpec::time("connect_timeout").no_effect("not implemented: `send_timeout` bounds connecting"),
    ParamSpec::integer("phi_threshold").default("16").no_effect(DETECTION),
    ParamSpec::time("hard_timeout").default("60s").no_effect(DETECTION),
    ParamSpec::bool("keepalive").default("false").no_effect(KEPT_OPEN),
    ParamSpec::time("keepalive_timeout").no_effect(KEPT_OPEN),
    ParamSpec::time("expire_dns_cache").no_effect(NOT_IMPLEMENTED),
    ParamSpec::bool("dns_round_robin").default("false").no_effect(NOT_IMPLEMENTED),
    ParamSpec::bool("ignore_network_errors_at_startup").default("false").no_effect(NO_STARTUP_CHECK),
    ParamSpec::bool("verify_connection_at_startup").default("false").no_effect(NO_STARTUP_CHECK),
    ParamSpec::string("tls_version").no_effect("rustls negotiates TLS 1.2 or 1.3"),
];

static SERVER: SectionSpec = SectionSpec::new(
    "server",
    &[
        ParamSpec::string("host")
            .required()
            .doc("the server (TCP, and UDP for `heartbeat_type udp`)"),
        ParamSpec::port("port").default("24224").doc(""),
        ParamSpec::string("name")
            .computed("`host:port`")
            .doc("used in logs and metrics"),
        ParamSpec::integer("weight")
            .default("60")
            .doc("share of the chunks among the available regular servers"),
        ParamSpec::bool("standby")
            .default("false")
            .doc("takes traffic only while no regular server is available"),
        ParamSpec::string("shared_key")
            .secret()
            .doc("this server's handshake key (overrides `<security>`'s)"),
        ParamSpec::string("username").doc("user credentials for the handshake"),
        ParamSpec::string("password").secret().doc(""),
    ],
)
.multiple()
.doc("A server to send to; at least one.");

static SECURITY: SectionSpec = SectionSpec::new(
    "security",
    &[
        ParamSpec::string("shared_key")
            .required()
            .secret()
            .doc("the handshake key (HELO/PING/PONG with SHA-512 digests)"),
        ParamSpec::string("self_hostname")
            .computed("the host name")
            .doc("this side's name in the handshake"),
        ParamSpec::string("username")
            .no_effect("not implemented here: give `username` in each `<server>`"),
        ParamSpec::string("password")
            .secret()
            .no_effect("not implemented here: give `password` in each `<server>`"),
    ],
)
.doc("The Forward handshake.");

static SECONDARY: SectionSpec = SectionSpec::new("secondary", &[])
    .free_form()
    .no_effect("not implemented: a chunk given up is logged (ERROR) and counted in `dropped_*`");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn OutputPlugin> = PluginSpec {
    type_name: "forward",
    summary: "Sends events to other Forward servers (logship, Fluentd) with load balancing, failover and acks; see [forward-output.md](forward-output.md).",
    params: PARAMS,
    sections: &[&SERVER, &SECURITY, &crate::buffer::config::SECTION, &SECONDARY],
    parse,
};

fn server(t: &mut Section<'_, '_>) -> ForwardServerTarget {
    ForwardServerTarget {
        host: t.get("host"),
        port: t.get("port"),
        name: t.opt("name"),
        weight: t.get("weight"),
        standby: t.get("standby"),
        shared_key: t.secret("shared_key"),
        username: t.opt("username"),
        password: t.secret("password"),
    }
}

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn OutputPlugin> {
    let servers = s.children("server", server);
    if servers.is_empty() {
        s.error_here("@type forward needs at least one <server> section");
    }
    let (shared_key, self_hostname) = s
        .child("security", |t| {
            (t.secret("shared_key"), t.opt("self_hostname"))
        })
        .unwrap_or((None, None));
    let transport: String = s.get("transport");
    let cfg = ForwardOutputConfig {
        servers,
        require_ack_response: s.get("require_ack_response"),
        ack_response_timeout: s.get("ack_response_timeout"),
        send_timeout: s.get("send_timeout"),
        heartbeat_type: s.get("heartbeat_type"),
        compress: s.get("compress"),
        send_metadata: s.get("send_metadata"),
        shared_key,
        self_hostname,
        buffer: s.child("buffer", crate::buffer::config::parse),
        tls: transport == "tls",
        tls_cert_path: s.opt("tls_cert_path"),
        tls_verify_hostname: s.get("tls_verify_hostname"),
        tls_insecure_mode: s.get("tls_insecure_mode"),
        heartbeat_interval: s.get("heartbeat_interval"),
        recover_wait: s.get("recover_wait"),
    };
    if cfg.heartbeat_interval.is_zero() {
        s.error_here("heartbeat_interval must be greater than 0");
    }
    if cfg.tls && !cfg.tls_insecure_mode && cfg.tls_cert_path.is_none() {
        s.error_here(
            "transport tls needs tls_cert_path (the CA to trust) or tls_insecure_mode true",
        );
    }
    Arc::new(cfg)
}

impl OutputPlugin for ForwardOutputConfig {
    fn type_name(&self) -> &'static str {
        "forward"
    }

    fn describe(&self) -> String {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| {
                let standby = if s.standby { " (standby)" } else { "" };
                format!("{}:{}{standby}", s.host, s.port)
            })
            .collect();
        format!("forward servers={}", servers.join(","))
    }

    fn build(&self, ctx: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String> {
        let out =
            super::ForwardOutput::new(self, ctx.id()).map_err(|e| format!("@type forward: {e}"))?;
        Ok(Arc::new(out))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
