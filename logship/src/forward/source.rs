//! `<source> @type forward` (Fluentd's `in_forward`): its parameters, and how they become a
//! running [`ForwardServer`].

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::server::{ForwardListeners, ForwardServer, ForwardServerConfig, TlsConfig};
use super::{SecurityConfig, UserCredential};
use crate::config::params::{ParamSpec, SectionSpec, NOT_IMPLEMENTED};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::BoxFuture;
use crate::source::{SourceContext, SourcePlugin};

/// `<source> @type forward`, checked.
#[derive(Debug, Clone)]
pub struct ForwardSourceConfig {
    pub bind: String,
    pub port: u16,
    pub chunk_size_limit: u64,
    pub skip_invalid_event: bool,
    pub source_address_key: Option<String>,
    pub source_hostname_key: Option<String>,
    pub tag: Option<String>,
    pub add_tag_prefix: Option<String>,
    pub read_timeout: Duration,
    pub max_connections: usize,
    pub security: Option<ForwardSecurity>,
    pub tls: Option<TlsFiles>,
}

/// `<security>`.
#[derive(Debug, Clone)]
pub struct ForwardSecurity {
    pub self_hostname: String,
    pub shared_key: String,
    pub user_auth: bool,
    /// `<user>` username and password.
    pub users: Vec<(String, String)>,
}

/// `<transport tls>`: the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_path: Option<String>,
    pub private_key_path: Option<String>,
}

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string("bind").default("0.0.0.0").doc("address to listen on (TCP, and UDP for heartbeats)"),
    ParamSpec::port("port").default("24224").doc("TCP port; UDP heartbeats are answered on the same port"),
    ParamSpec::size("chunk_size_limit").default("32m").doc("largest frame; a larger declared length closes the connection as soon as its header is read"),
    ParamSpec::bool("skip_invalid_event").default("false").doc("skip events with a bad time or a non-map record (counted, WARN) instead of closing the connection"),
    ParamSpec::string("source_address_key").doc("add the client's IP address to each record under this key"),
    ParamSpec::string("source_hostname_key").doc("add the client's host name (the handshake's, else its IP address; no reverse DNS) under this key"),
    ParamSpec::string("tag").doc("replace every event's tag"),
    ParamSpec::string("add_tag_prefix").doc("prefix every tag with `PREFIX.`"),
    ParamSpec::time("read_timeout").default("30s").doc("logship's own: a frame (or the handshake) must complete this long after its first byte (slow-loris)"),
    ParamSpec::integer("max_connections").default("1024").doc("logship's own: at most this many connections; more wait in the accept backlog"),
    ParamSpec::time("linger_timeout").default("0").no_effect(NOT_IMPLEMENTED),
    ParamSpec::size("chunk_size_warn_limit").no_effect(NOT_IMPLEMENTED),
    ParamSpec::bool("resolve_hostname").default("false").no_effect("host names are never resolved: `source_hostname_key` holds the handshake's host name or the IP address"),
    ParamSpec::bool("deny_keepalive").default("false").no_effect(NOT_IMPLEMENTED),
    ParamSpec::bool("send_keepalive_packet").default("false").no_effect(NOT_IMPLEMENTED),
];

static USER: SectionSpec = SectionSpec::new(
    "user",
    &[
        ParamSpec::string("username").required(),
        ParamSpec::string("password").required(),
    ],
)
.multiple()
.doc("A user allowed with `user_auth true`.");

static CLIENT: SectionSpec = SectionSpec::new("client", &[])
    .free_form()
    .not_supported("per-client host, network and key sections are not implemented");

static SECURITY: SectionSpec = SectionSpec::new(
    "security",
    &[
        ParamSpec::string("self_hostname").computed("the host name").doc("the server's name in the handshake"),
        ParamSpec::string("shared_key").required().doc("the key both sides digest in the handshake"),
        ParamSpec::bool("user_auth").default("false").doc("also require a `<user>`'s username and password"),
        ParamSpec::bool("allow_anonymous_source").default("true").no_effect("without `<client>` sections every client is anonymous and allowed (with the shared key)"),
    ],
)
.sections(&[&USER, &CLIENT])
.doc("The Forward handshake (HELO/PING/PONG with SHA-512 digests).");

const TLS_VERSIONS: &str = "rustls negotiates TLS 1.2 or 1.3 with its own cipher suites";

static TRANSPORT: SectionSpec = SectionSpec::new(
    "transport",
    &[
        ParamSpec::string("cert_path").doc("PEM certificate chain, leaf first (needed with `tls`)"),
        ParamSpec::string("private_key_path")
            .doc("PEM private key: PKCS#8, PKCS#1 or SEC1 (needed with `tls`)"),
        ParamSpec::bool("client_cert_auth")
            .default("false")
            .doc("only `false`: clients are not asked for a certificate"),
        ParamSpec::string("private_key_passphrase")
            .no_effect("encrypted private keys are not supported"),
        ParamSpec::string("ca_path").no_effect("clients are not asked for a certificate"),
        ParamSpec::bool("insecure").no_effect(TLS_VERSIONS),
        ParamSpec::string("version").no_effect(TLS_VERSIONS),
        ParamSpec::string("min_version").no_effect(TLS_VERSIONS),
        ParamSpec::string("max_version").no_effect(TLS_VERSIONS),
        ParamSpec::string("ciphers").no_effect(TLS_VERSIONS),
    ],
)
.arg("tcp | tls")
.doc("`<transport tls>`: TLS with rustls; `<transport tcp>`: plain TCP (the default).");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn SourcePlugin> = PluginSpec {
    type_name: "forward",
    summary: "The Forward protocol server (Fluentd's `in_forward`): every event mode, acks, the `<security>` handshake, TLS, UDP heartbeats.",
    params: PARAMS,
    sections: &[&SECURITY, &TRANSPORT],
    parse,
};

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn security(s: &mut Section<'_, '_>) -> ForwardSecurity {
    let self_hostname = s.opt("self_hostname").unwrap_or_else(hostname);
    let shared_key = s.get("shared_key");
    let user_auth = s.get("user_auth");
    let users = s.children("user", |u| (u.get("username"), u.get("password")));
    ForwardSecurity {
        self_hostname,
        shared_key,
        user_auth,
        users,
    }
}

fn transport(s: &mut Section<'_, '_>) -> Option<TlsFiles> {
    let files = TlsFiles {
        cert_path: s.opt("cert_path"),
        private_key_path: s.opt("private_key_path"),
    };
    if s.get::<bool>("client_cert_auth") {
        s.error_here(
            "client_cert_auth true is not supported: clients are not asked for a certificate",
        );
    }
    match s.element().arg.trim() {
        "tls" => Some(files),
        "tcp" | "" => {
            for name in ["cert_path", "private_key_path"] {
                if let Some(p) = s.given(name) {
                    s.note_no_effect(&p.loc, name, "only `<transport tls>` uses it");
                }
            }
            None
        }
        other => {
            s.error_here(format!(
                "unsupported transport {other:?}; supported: tls, tcp"
            ));
            None
        }
    }
}

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn SourcePlugin> {
    Arc::new(ForwardSourceConfig {
        bind: s.get("bind"),
        port: s.get("port"),
        chunk_size_limit: s.get("chunk_size_limit"),
        skip_invalid_event: s.get("skip_invalid_event"),
        source_address_key: s.opt("source_address_key"),
        source_hostname_key: s.opt("source_hostname_key"),
        tag: s.opt("tag"),
        add_tag_prefix: s.opt("add_tag_prefix"),
        read_timeout: s.get("read_timeout"),
        max_connections: s.get("max_connections"),
        security: s.child("security", security),
        tls: s.child("transport", transport).flatten(),
    })
}

impl ForwardSourceConfig {
    /// The forward server's settings for this source.
    pub fn server_config(&self) -> Result<ForwardServerConfig, String> {
        let mut c = ForwardServerConfig {
            bind: self.bind.clone(),
            port: self.port,
            chunk_size_limit: usize::try_from(self.chunk_size_limit).unwrap_or(usize::MAX),
            read_timeout: self.read_timeout,
            max_connections: self.max_connections,
            tag: self.tag.clone(),
            add_tag_prefix: self.add_tag_prefix.clone(),
            source_hostname_key: self.source_hostname_key.clone(),
            source_address_key: self.source_address_key.clone(),
            skip_invalid_event: self.skip_invalid_event,
            ..Default::default()
        };
        if let Some(s) = &self.security {
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
        if let Some(t) = &self.tls {
            let cert = t
                .cert_path
                .clone()
                .ok_or("<transport tls> needs cert_path")?;
            let key = t
                .private_key_path
                .clone()
                .ok_or("<transport tls> needs private_key_path")?;
            c.tls = Some(TlsConfig {
                cert_path: cert.into(),
                key_path: key.into(),
            });
        }
        Ok(c)
    }
}

impl SourcePlugin for ForwardSourceConfig {
    fn type_name(&self) -> &'static str {
        "forward"
    }

    fn describe(&self) -> String {
        let mut d = format!("forward {}:{}", self.bind, self.port);
        if self.security.is_some() {
            d.push_str(" (shared_key handshake)");
        }
        if self.tls.is_some() {
            d.push_str(" (tls)");
        }
        d
    }

    fn start<'a>(
        &'a self,
        ctx: SourceContext<'a>,
    ) -> BoxFuture<'a, Result<JoinHandle<()>, String>> {
        Box::pin(async move {
            let at = format!("source at {}", ctx.loc);
            let scfg = self.server_config().map_err(|e| format!("{e} ({at})"))?;
            let listeners = ForwardListeners::bind(&scfg)
                .await
                .map_err(|e| format!("cannot listen on {}:{} ({at}): {e}", scfg.bind, scfg.port))?;
            let server = ForwardServer::new(scfg).map_err(|e| format!("{e} ({at})"))?;
            if let Some(addr) = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok()) {
                tracing::info!(address = %addr, source = "forward", plugin_id = %ctx.id, label = ctx.label.unwrap_or("(root)"), "listening");
            }
            let (sink, shutdown) = (ctx.sink.clone(), ctx.shutdown.clone());
            let metrics = Some(server.metrics());
            let serving = async move { server.run(listeners, sink, shutdown).await };
            Ok(ctx.spawn_listed("forward", metrics, "forward input", serving))
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

    fn forward(body: &str) -> ForwardSourceConfig {
        let cfg = Config::from_str_at(
            &format!("<source>\n@type forward\n{body}\n</source>\n"),
            std::path::Path::new("t.conf"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        cfg.sources[0]
            .config::<ForwardSourceConfig>()
            .unwrap()
            .clone()
    }

    #[test]
    fn declared_defaults_are_the_servers_defaults() {
        let c = forward("").server_config().unwrap();
        let d = ForwardServerConfig::default();
        assert_eq!(c.chunk_size_limit, d.chunk_size_limit);
        assert_eq!(c.read_timeout, d.read_timeout);
        assert_eq!(c.max_connections, d.max_connections);
        assert_eq!((c.bind.as_str(), c.port), ("0.0.0.0", 24224));
    }

    #[test]
    fn users_count_only_with_user_auth() {
        let body = "<security>\nshared_key k\nself_hostname me\n<user>\nusername a\npassword b\n</user>\n</security>";
        let c = forward(body).server_config().unwrap();
        let sec = c.security.unwrap();
        assert_eq!(
            (sec.shared_key.as_str(), sec.self_hostname.as_str()),
            ("k", "me")
        );
        assert!(sec.users.is_empty());
        let body = body.replace("shared_key k", "shared_key k\nuser_auth true");
        let sec = forward(&body).server_config().unwrap().security.unwrap();
        assert_eq!(sec.users.len(), 1);
    }

    #[test]
    fn transport_tcp_takes_no_tls_files() {
        let cfg = Config::from_str_at(
            "<source>\n@type forward\n<transport tcp>\ncert_path /x\n</transport>\n</source>\n",
            std::path::Path::new("t.conf"),
        )
        .unwrap();
        assert!(cfg.sources[0]
            .config::<ForwardSourceConfig>()
            .unwrap()
            .tls
            .is_none());
        assert_eq!(cfg.no_effect[0].name, "cert_path");
        let e = Config::from_str_at(
            "<source>\n@type forward\n<transport tls>\nclient_cert_auth true\n</transport>\n</source>\n",
            std::path::Path::new("t.conf"),
        )
        .unwrap_err();
        assert!(
            e[0].to_string()
                .contains("client_cert_auth true is not supported"),
            "{}",
            e[0]
        );
    }
}
