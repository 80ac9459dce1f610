//! `<source> @type forward` (Fluentd's `in_forward`): its parameters, and how they become a
//! running [`ForwardServer`]. The limits, deadlines and the memory budget they set are
//! explained in `docs/logship.md` ("Connections, deadlines and memory").

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::server::{ForwardListeners, ForwardServer, ForwardServerConfig, TlsConfig};
use super::{ClientRule, SecurityConfig, UserCredential};
use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::BoxFuture;
use crate::secret::Secret;
use crate::source::{SourceContext, SourcePlugin};

/// `<source> @type forward`, checked.
#[derive(Debug, Clone)]
pub struct ForwardSourceConfig {
    pub bind: String,
    pub port: u16,
    pub chunk_size_limit: u64,
    pub chunk_size_warn_limit: Option<u64>,
    pub skip_invalid_event: bool,
    pub source_address_key: Option<String>,
    pub source_hostname_key: Option<String>,
    /// Effective: Fluentd's default is true once `source_hostname_key` is set.
    pub resolve_hostname: bool,
    pub tag: Option<String>,
    pub add_tag_prefix: Option<String>,
    pub read_timeout: Duration,
    pub handshake_timeout: Duration,
    pub min_receive_rate: u64,
    /// `None`: this source's share of what the open-file limit allows.
    pub max_connections: Option<usize>,
    pub max_decompression_ratio: u32,
    pub deny_keepalive: bool,
    /// `SO_LINGER`; `None`: not set (the system's graceful close).
    pub linger_timeout: Option<Duration>,
    pub send_keepalive_packet: bool,
    pub security: Option<ForwardSecurity>,
    pub tls: Option<TlsFiles>,
}

/// `<security>`.
#[derive(Debug, Clone)]
pub struct ForwardSecurity {
    pub self_hostname: String,
    pub shared_key: Secret,
    pub user_auth: bool,
    pub allow_anonymous_source: bool,
    /// `<user>` username and password.
    pub users: Vec<(String, Secret)>,
    /// `<client>` sections that named a host or network.
    pub clients: Vec<ClientRule>,
}

/// `<transport tls>`: the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_path: Option<String>,
    pub private_key_path: Option<String>,
    /// The passphrase of an encrypted private key.
    pub private_key_passphrase: Option<Secret>,
}

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string("bind").default("0.0.0.0").doc("address to listen on (TCP, and UDP for heartbeats)"),
    ParamSpec::port("port").default("24224").doc("TCP port; UDP heartbeats are answered on the same port"),
    ParamSpec::size("chunk_size_limit").default("32m").doc("largest frame; a larger declared length closes the connection as soon as its header is read"),
    ParamSpec::size("chunk_size_warn_limit").doc("a frame larger than this is accepted with a WARN (tag, host, limit, size; rate-limited) and counted"),
    ParamSpec::bool("skip_invalid_event").default("false").doc("skip events with a bad time or a non-map record (counted, WARN) instead of closing the connection"),
    ParamSpec::string("source_address_key").doc("add the client's IP address to each record under this key"),
    ParamSpec::string("source_hostname_key").doc("add the client's host name under this key: its reverse DNS name with `resolve_hostname`, else its IP address"),
    ParamSpec::bool("resolve_hostname").computed("true when `source_hostname_key` is set, else false (as in Fluentd; false with the key is an error)").doc("look the client's address up in DNS (`getnameinfo`, cached 60 s) for `source_hostname_key`"),
    ParamSpec::string("tag").doc("replace every event's tag"),
    ParamSpec::string("add_tag_prefix").doc("prefix every tag with `PREFIX.`"),
    ParamSpec::bool("deny_keepalive").default("false").doc("close each connection after its first message (and its ack); the HELO says `keepalive: false`"),
    ParamSpec::time("linger_timeout").doc("`SO_LINGER` on accepted connections: `0` resets the connection at close (Fluentd's default); unset, the FIN handshake delivers what was written"),
    ParamSpec::bool("send_keepalive_packet").default("false").doc("turn on TCP keepalive probes (`SO_KEEPALIVE`) on accepted connections"),
    ParamSpec::time("handshake_timeout").default("5s").doc("logship's own: a connection's first frame (the PING with `<security>`, and a TLS handshake) must be complete this long after its first byte"),
    ParamSpec::time("read_timeout").default("30s").doc("logship's own: any later frame must be complete this long after its first byte"),
    ParamSpec::size("min_receive_rate").default("1k").doc("logship's own: after `handshake_timeout`, a frame in progress must have arrived at this many bytes per second on average; 0 turns it off"),
    ParamSpec::integer("max_connections").computed("the open-file hard limit minus a tenth (at least 256), shared among the forward sources").doc("logship's own: at most this many connections; a new one evicts the stalest connection that delivers nothing"),
    ParamSpec::integer("max_decompression_ratio").default("100").doc("logship's own: a CompressedPackedForward payload may inflate to this many bytes per compressed byte (the first 1 MiB always)"),
];

static USER: SectionSpec = SectionSpec::new(
    "user",
    &[
        ParamSpec::string("username").required(),
        ParamSpec::string("password").required().secret(),
    ],
)
.multiple()
.doc("A user allowed with `user_auth true`.");

static CLIENT: SectionSpec = SectionSpec::new(
    "client",
    &[
        ParamSpec::string("host").doc(
            "the client's address or host name (resolved once at start); either this or `network`",
        ),
        ParamSpec::string("network").doc("the clients' network, `ADDR/PREFIX`"),
        ParamSpec::string("shared_key")
            .secret()
            .doc("the shared key of these clients instead of the section's"),
        ParamSpec::array("users")
            .doc("the `<user>`s that may log in from these clients (default: every one)"),
    ],
)
.multiple()
.doc("Clients by host or network, with their own shared key or users (the first match applies).");

static SECURITY: SectionSpec = SectionSpec::new(
    "security",
    &[
        ParamSpec::string("self_hostname").computed("the host name").doc("the server's name in the handshake"),
        ParamSpec::string("shared_key").required().secret().doc("the key both sides digest in the handshake"),
        ParamSpec::bool("user_auth").default("false").doc("also require a `<user>`'s username and password"),
        ParamSpec::bool("allow_anonymous_source").default("true").doc("false: only clients a `<client>` section names may log in (`PONG false` for the others)"),
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
            .doc("PEM private key: PKCS#8, PKCS#1 or SEC1, or encrypted PKCS#8 with `private_key_passphrase` (needed with `tls`)"),
        ParamSpec::bool("client_cert_auth")
            .default("false")
            .doc("only `false`: clients are not asked for a certificate"),
        ParamSpec::string("private_key_passphrase")
            .secret()
            .doc("the passphrase of an encrypted private key (`ENCRYPTED PRIVATE KEY`, PKCS#8)"),
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
    let shared_key = s.secret("shared_key").unwrap_or_default();
    let user_auth = s.get("user_auth");
    let allow_anonymous_source: bool = s.get("allow_anonymous_source");
    let users = s.children("user", |u| {
        (u.get("username"), u.secret("password").unwrap_or_default())
    });
    let clients: Vec<Option<ClientRule>> = s.children("client", client);
    // As Fluentd's in_forward checks them.
    if user_auth && users.is_empty() {
        s.error_here("<user> sections required if user_auth enabled");
    }
    if !allow_anonymous_source && clients.is_empty() {
        s.error_here("<client> sections required if allow_anonymous_source disabled");
    }
    ForwardSecurity {
        self_hostname,
        shared_key,
        user_auth,
        allow_anonymous_source,
        users,
        clients: clients.into_iter().flatten().collect(),
    }
}

/// One `<client>`: its network (a `host` resolved now, as Fluentd does at configure), key and
/// users. `None` (with an error recorded) when it names no valid host or network.
fn client(c: &mut Section<'_, '_>) -> Option<ClientRule> {
    let host = c.given("host").cloned();
    let network = c.given("network").cloned();
    let shared_key = c.secret("shared_key");
    let users = c.opt::<Vec<String>>("users").unwrap_or_default();
    let network = match (host, network) {
        (Some(_), Some(n)) => {
            c.error(
                &n.loc,
                "both of 'host' and 'network' are specified for client",
            );
            return None;
        }
        (None, None) => {
            c.error_here("either of 'host' and 'network' must be specified for client");
            return None;
        }
        (Some(h), None) => match resolve_host(h.value.trim()) {
            Some(ip) => ipnet::IpNet::from(ip),
            None => {
                c.error(
                    &h.loc,
                    format!("host '{}' cannot be resolved", h.value.trim()),
                );
                return None;
            }
        },
        (None, Some(n)) => match parse_network(n.value.trim()) {
            Some(net) => net,
            None => {
                c.error(
                    &n.loc,
                    format!("network '{}' address format is invalid", n.value.trim()),
                );
                return None;
            }
        },
    };
    Some(ClientRule {
        network,
        shared_key,
        users,
    })
}

/// A `<client> host`: an address, or a name resolved now.
fn resolve_host(host: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    use std::net::ToSocketAddrs;
    (host, 0).to_socket_addrs().ok()?.next().map(|a| a.ip())
}

/// A `<client> network`: `addr/prefix`, or a single address.
fn parse_network(n: &str) -> Option<ipnet::IpNet> {
    n.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| n.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn transport(s: &mut Section<'_, '_>) -> Option<TlsFiles> {
    let files = TlsFiles {
        cert_path: s.opt("cert_path"),
        private_key_path: s.opt("private_key_path"),
        private_key_passphrase: s.secret("private_key_passphrase"),
    };
    if s.get::<bool>("client_cert_auth") {
        s.error_here(
            "client_cert_auth true is not supported: clients are not asked for a certificate",
        );
    }
    match s.element().arg.trim() {
        "tls" => Some(files),
        "tcp" | "" => {
            for name in ["cert_path", "private_key_path", "private_key_passphrase"] {
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
    let source_hostname_key: Option<String> = s.opt("source_hostname_key");
    // Fluentd: unset means true once source_hostname_key is set; false with it is an error.
    let resolve_hostname = match (s.opt::<bool>("resolve_hostname"), &source_hostname_key) {
        (Some(false), Some(_)) => {
            let loc = s.given("resolve_hostname").map(|p| p.loc.clone());
            let loc = loc.unwrap_or_else(|| s.element().loc.clone());
            s.error(
                &loc,
                "resolve_hostname must be true with source_hostname_key (as in Fluentd)",
            );
            false
        }
        (Some(v), _) => v,
        (None, key) => key.is_some(),
    };
    let max_connections: Option<usize> = s.opt("max_connections");
    let max_decompression_ratio: u32 = s.get("max_decompression_ratio");
    for (name, zero) in [
        ("max_connections", max_connections == Some(0)),
        ("max_decompression_ratio", max_decompression_ratio == 0),
    ] {
        if zero {
            let loc = s.given(name).map(|p| p.loc.clone());
            let loc = loc.unwrap_or_else(|| s.element().loc.clone());
            s.error(&loc, format!("{name} must be at least 1"));
        }
    }
    Arc::new(ForwardSourceConfig {
        bind: s.get("bind"),
        port: s.get("port"),
        chunk_size_limit: s.get("chunk_size_limit"),
        chunk_size_warn_limit: s.opt("chunk_size_warn_limit"),
        skip_invalid_event: s.get("skip_invalid_event"),
        source_address_key: s.opt("source_address_key"),
        source_hostname_key,
        resolve_hostname,
        tag: s.opt("tag"),
        add_tag_prefix: s.opt("add_tag_prefix"),
        read_timeout: s.get("read_timeout"),
        handshake_timeout: s.get("handshake_timeout"),
        min_receive_rate: s.get("min_receive_rate"),
        max_connections,
        max_decompression_ratio,
        deny_keepalive: s.get("deny_keepalive"),
        linger_timeout: s.opt("linger_timeout"),
        send_keepalive_packet: s.get("send_keepalive_packet"),
        security: s.child("security", security),
        tls: s.child("transport", transport).flatten(),
    })
}

impl ForwardSourceConfig {
    /// The forward server's settings for this source; `connection_share` is the connection
    /// cap when `max_connections` is not given (this source's share of what the open-file
    /// limit allows, see [`crate::source::SourceContext::connection_share`]).
    pub fn server_config(&self, connection_share: usize) -> Result<ForwardServerConfig, String> {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let mut c = ForwardServerConfig {
            bind: self.bind.clone(),
            port: self.port,
            chunk_size_limit: size(self.chunk_size_limit),
            chunk_size_warn_limit: self.chunk_size_warn_limit.map(size),
            read_timeout: self.read_timeout,
            handshake_timeout: self.handshake_timeout,
            min_receive_rate: self.min_receive_rate,
            max_connections: self.max_connections.unwrap_or(connection_share),
            max_decompression_ratio: self.max_decompression_ratio,
            tag: self.tag.clone(),
            add_tag_prefix: self.add_tag_prefix.clone(),
            source_hostname_key: self.source_hostname_key.clone(),
            resolve_hostname: self.resolve_hostname,
            source_address_key: self.source_address_key.clone(),
            skip_invalid_event: self.skip_invalid_event,
            deny_keepalive: self.deny_keepalive,
            linger_timeout: self.linger_timeout,
            send_keepalive_packet: self.send_keepalive_packet,
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
                clients: s.clients.clone(),
                allow_anonymous_source: s.allow_anonymous_source,
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
                key_passphrase: t.private_key_passphrase.clone(),
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
            let scfg = self
                .server_config(ctx.connection_share)
                .map_err(|e| format!("{e} ({at})"))?;
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
        let c = forward("").server_config(123).unwrap();
        let d = ForwardServerConfig::default();
        assert_eq!(c.chunk_size_limit, d.chunk_size_limit);
        assert_eq!(c.read_timeout, d.read_timeout);
        assert_eq!(c.handshake_timeout, d.handshake_timeout);
        assert_eq!(c.min_receive_rate, d.min_receive_rate);
        assert_eq!(c.max_decompression_ratio, d.max_decompression_ratio);
        assert_eq!(c.chunk_size_warn_limit, d.chunk_size_warn_limit);
        assert_eq!(c.linger_timeout, d.linger_timeout);
        assert_eq!(
            (
                c.deny_keepalive,
                c.send_keepalive_packet,
                c.resolve_hostname
            ),
            (false, false, false)
        );
        // the open-file limit's share, unless given
        assert_eq!(c.max_connections, 123);
        assert_eq!(
            forward("max_connections 7")
                .server_config(123)
                .unwrap()
                .max_connections,
            7
        );
        assert_eq!((c.bind.as_str(), c.port), ("0.0.0.0", 24224));
    }

    #[test]
    fn users_count_only_with_user_auth() {
        let body = "<security>\nshared_key k\nself_hostname me\n<user>\nusername a\npassword b\n</user>\n</security>";
        let c = forward(body).server_config(10).unwrap();
        let sec = c.security.unwrap();
        assert_eq!(
            (sec.shared_key.expose(), sec.self_hostname.as_str()),
            ("k", "me")
        );
        assert!(sec.users.is_empty());
        let body = body.replace("shared_key k", "shared_key k\nuser_auth true");
        let sec = forward(&body).server_config(10).unwrap().security.unwrap();
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
