//! The Forward protocol server (fluentd's `in_forward`): listeners, the accept loop, the
//! connection cap, the UDP heartbeat. One connection's protocol loop is in
//! [`super::connection`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::admission::{default_max_connections, Admission, Staleness, Ticket};
use super::codec::DecodeOptions;
use super::connection::{self, ConnectionError, Ctx};
use super::deadline::FrameLimits;
use super::handshake::SecurityConfig;
use super::hostname::HostnameResolver;
use crate::event::EventSink;
use crate::log_limit::LogLimiter;
use crate::memory_budget::MemoryBudget;

/// TLS settings: PEM files for the certificate chain and the private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the certificate chain (leaf first).
    pub cert_path: PathBuf,
    /// PEM file with the private key: PKCS#8, PKCS#1 or SEC1, or encrypted PKCS#8
    /// ([`crate::private_key`]).
    pub key_path: PathBuf,
    /// The passphrase of an encrypted key (`private_key_passphrase`).
    pub key_passphrase: Option<crate::secret::Secret>,
}

/// Settings of a Forward server.
#[derive(Debug, Clone)]
pub struct ForwardServerConfig {
    /// Address to bind (`0.0.0.0` in fluentd; default here `127.0.0.1`).
    pub bind: String,
    /// TCP (and UDP heartbeat) port; default 24224.
    pub port: u16,
    /// Handshake (`<security>`); `None` disables it.
    pub security: Option<SecurityConfig>,
    /// TLS (`<transport tls>`); `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// Largest frame in bytes (`chunk_size_limit`); larger frames close the connection.
    pub chunk_size_limit: usize,
    /// Frames larger than this are accepted with a WARN (`chunk_size_warn_limit`).
    pub chunk_size_warn_limit: Option<usize>,
    /// Deepest accepted msgpack nesting.
    pub max_depth: usize,
    /// Largest decompressed CompressedPackedForward payload.
    pub max_decompressed_size: usize,
    /// Largest ratio of decompressed to compressed bytes (`max_decompression_ratio`).
    pub max_decompression_ratio: u32,
    /// The first frame (the PING with `<security>`; the TLS handshake) must be complete within
    /// this long after its first byte (`handshake_timeout`, see [`super::deadline`]).
    pub handshake_timeout: Duration,
    /// Any later frame must be complete within this long after its first byte (`read_timeout`).
    pub read_timeout: Duration,
    /// A frame in progress must arrive at this many bytes per second on average once
    /// `handshake_timeout` has passed (`min_receive_rate`; 0 disables it).
    pub min_receive_rate: u64,
    /// Idle connections (no partial frame) are closed after this long; `None` keeps them.
    pub idle_timeout: Option<Duration>,
    /// At most this many connections at once; the stalest non-delivering one is evicted to
    /// admit a new one (see [`super::admission`]). Default: from the open-file limit.
    pub max_connections: usize,
    /// Replace every tag with this one (`tag`).
    pub tag: Option<String>,
    /// Prefix every tag with `prefix.` (`add_tag_prefix`).
    pub add_tag_prefix: Option<String>,
    /// Add the client's hostname under this key (`source_hostname_key`): its reverse DNS name
    /// with `resolve_hostname`, else its address.
    pub source_hostname_key: Option<String>,
    /// Look the client's name up in DNS for `source_hostname_key` (`resolve_hostname`).
    pub resolve_hostname: bool,
    /// Add the client's IP address under this key (`source_address_key`).
    pub source_address_key: Option<String>,
    /// Skip invalid events (non-map record, bad time) with a warning instead of failing.
    pub skip_invalid_event: bool,
    /// Close each connection after its first message (`deny_keepalive`); HELO says so.
    pub deny_keepalive: bool,
    /// `SO_LINGER` for accepted TCP connections (`linger_timeout`): `Some(0)` resets the
    /// connection at close instead of the FIN handshake. `None`: the system's default.
    pub linger_timeout: Option<Duration>,
    /// Turn on TCP keepalive probes on accepted connections (`send_keepalive_packet`).
    pub send_keepalive_packet: bool,
    /// Answer UDP heartbeats on the same port.
    pub udp_heartbeat: bool,
    /// Also listen on this Unix socket path.
    pub unix_path: Option<PathBuf>,
    /// On shutdown, connections with a frame in flight get this long to finish it.
    pub shutdown_grace: Duration,
    /// The memory budget for receive buffers and decompression; `None`: the process's
    /// ([`MemoryBudget::global`]).
    pub memory_budget: Option<Arc<MemoryBudget>>,
}

impl Default for ForwardServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 24224,
            security: None,
            tls: None,
            chunk_size_limit: super::codec::DEFAULT_MAX_FRAME_SIZE,
            chunk_size_warn_limit: None,
            max_depth: super::codec::DEFAULT_MAX_DEPTH,
            max_decompressed_size: super::codec::DEFAULT_MAX_DECOMPRESSED_SIZE,
            max_decompression_ratio: super::codec::DEFAULT_MAX_DECOMPRESSION_RATIO,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            min_receive_rate: DEFAULT_MIN_RECEIVE_RATE,
            idle_timeout: None,
            max_connections: default_max_connections(),
            tag: None,
            add_tag_prefix: None,
            source_hostname_key: None,
            resolve_hostname: false,
            source_address_key: None,
            skip_invalid_event: false,
            deny_keepalive: false,
            linger_timeout: None,
            send_keepalive_packet: false,
            udp_heartbeat: true,
            unix_path: None,
            shutdown_grace: Duration::from_secs(5),
            memory_budget: None,
        }
    }
}

/// Default `handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `min_receive_rate` in bytes per second.
pub const DEFAULT_MIN_RECEIVE_RATE: u64 = 1024;

/// Server errors (setup and fatal listener errors; per-connection errors are only logged).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Binding or accepting failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS configuration error: {0}")]
    Tls(String),
    /// Nothing to listen on.
    #[error("no listener configured")]
    NoListener,
}

/// Counters of a server, shared with whoever wants to export them.
#[derive(Debug, Default)]
pub struct ForwardMetrics {
    /// Connections accepted (TCP, TLS and Unix).
    pub connections_accepted: AtomicU64,
    /// Connections currently open.
    pub connections_active: AtomicU64,
    /// Events handed to the sink.
    pub events_received: AtomicU64,
    /// Bytes read from clients.
    pub bytes_received: AtomicU64,
    /// Frames (Forward messages) decoded, heartbeats and handshake messages included.
    pub frames_received: AtomicU64,
    /// Frames that could not be decoded (each closes its connection).
    pub frames_malformed: AtomicU64,
    /// Failed handshakes.
    pub handshake_failures: AtomicU64,
    /// Acks sent.
    pub acks_sent: AtomicU64,
    /// Events skipped by `skip_invalid_event`.
    pub events_skipped: AtomicU64,
    /// Batches the sink refused (not acked).
    pub emit_failures: AtomicU64,
    /// UDP heartbeats answered.
    pub heartbeats: AtomicU64,
    /// The connection cap in force (a gauge, set when the server starts).
    pub connection_limit: AtomicU64,
    /// New connections that found the table full (`max_connections`).
    pub connection_cap_reached: AtomicU64,
    /// Connections evicted to admit a new one.
    pub connections_evicted: AtomicU64,
    /// Connections closed because a frame missed its deadline (slow-loris protection).
    pub connections_timed_out: AtomicU64,
    /// Frames refused because they are larger than the whole memory budget.
    pub frames_over_budget: AtomicU64,
    /// Times a connection waited for the memory budget before reading or inflating more.
    pub memory_waits: AtomicU64,
    /// Frames larger than `chunk_size_warn_limit` (accepted, with a WARN).
    pub chunk_size_warnings: AtomicU64,
}

impl ForwardMetrics {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The sockets a server serves. Bind them yourself (tests use port 0) or with
/// [`ForwardListeners::bind`].
#[derive(Debug, Default)]
pub struct ForwardListeners {
    /// TCP (plain or TLS).
    pub tcp: Option<TcpListener>,
    /// UDP heartbeat socket.
    pub udp: Option<UdpSocket>,
    /// Unix socket.
    #[cfg(unix)]
    pub unix: Option<tokio::net::UnixListener>,
}

impl ForwardListeners {
    /// Binds what `cfg` asks for: TCP `bind:port`, UDP on the same port when
    /// `udp_heartbeat`, and the Unix socket when `unix_path` is set.
    pub async fn bind(cfg: &ForwardServerConfig) -> Result<Self, ForwardError> {
        let tcp = TcpListener::bind((cfg.bind.as_str(), cfg.port)).await?;
        let port = tcp.local_addr()?.port();
        let udp = if cfg.udp_heartbeat {
            Some(UdpSocket::bind((cfg.bind.as_str(), port)).await?)
        } else {
            None
        };
        #[cfg(unix)]
        let unix = match &cfg.unix_path {
            Some(p) => {
                let _ = std::fs::remove_file(p);
                Some(tokio::net::UnixListener::bind(p)?)
            }
            None => None,
        };
        Ok(Self {
            tcp: Some(tcp),
            udp,
            #[cfg(unix)]
            unix,
        })
    }
}

/// A Forward server: configuration, TLS acceptor and metrics.
pub struct ForwardServer {
    cfg: ForwardServerConfig,
    metrics: Arc<ForwardMetrics>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl ForwardServer {
    /// Validates `cfg` and loads the TLS certificate/key if configured.
    pub fn new(cfg: ForwardServerConfig) -> Result<Self, ForwardError> {
        let tls = match &cfg.tls {
            Some(t) => Some(load_tls(t)?),
            None => None,
        };
        Ok(Self {
            cfg,
            metrics: Arc::new(ForwardMetrics::default()),
            tls,
        })
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<ForwardMetrics> {
        self.metrics.clone()
    }

    fn context(&self, sink: Arc<dyn EventSink>) -> Arc<Ctx> {
        let cfg = self.cfg.clone();
        let decode = DecodeOptions {
            max_frame_size: cfg.chunk_size_limit,
            max_depth: cfg.max_depth,
            max_decompressed_size: cfg.max_decompressed_size,
            max_decompression_ratio: cfg.max_decompression_ratio,
            skip_invalid_event: cfg.skip_invalid_event,
        };
        let limits = FrameLimits {
            handshake_timeout: cfg.handshake_timeout,
            read_timeout: cfg.read_timeout,
            min_receive_rate: cfg.min_receive_rate,
        };
        let budget = cfg
            .memory_budget
            .clone()
            .unwrap_or_else(|| MemoryBudget::global().clone());
        Arc::new(Ctx {
            cfg,
            sink,
            metrics: self.metrics.clone(),
            decode,
            limits,
            budget,
            hostnames: HostnameResolver::default(),
        })
    }

    /// Serves one already-accepted connection to its end, as the accept loop would (without
    /// TLS, the cap or shutdown). For tests and the connection fuzzer.
    pub async fn serve_connection<S>(
        &self,
        stream: S,
        peer: Option<SocketAddr>,
        sink: Arc<dyn EventSink>,
    ) -> Result<(), ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ctx = self.context(sink);
        let admission = Admission::new(1);
        let ticket = admission
            .try_admit("test".into())
            .expect("an empty table has room");
        let never = CancellationToken::new();
        connection::serve(stream, peer, &ctx, ticket.slot(), &never).await
    }

    /// Serves `listeners` until `shutdown` is cancelled, then stops accepting, lets
    /// connections finish the frame in flight (bounded by `shutdown_grace`) and returns.
    pub async fn run(
        self,
        listeners: ForwardListeners,
        sink: Arc<dyn EventSink>,
        shutdown: CancellationToken,
    ) -> Result<(), ForwardError> {
        let ctx = self.context(sink);
        let tls = self.tls;
        let grace = ctx.cfg.shutdown_grace;
        let admission = Admission::new(ctx.cfg.max_connections);
        ctx.metrics
            .connection_limit
            .store(admission.cap() as u64, Ordering::Relaxed);
        let tracker = TaskTracker::new();
        let mut any = false;

        if let Some(udp) = listeners.udp {
            any = true;
            let (ctx, sd) = (ctx.clone(), shutdown.clone());
            tracker.spawn(async move { udp_heartbeat(udp, ctx, sd).await });
        }
        if let Some(tcp) = listeners.tcp {
            any = true;
            let (ctx, sd, adm, tr, tls) = (
                ctx.clone(),
                shutdown.clone(),
                admission.clone(),
                tracker.clone(),
                tls.clone(),
            );
            tracker.spawn(async move {
                if let Ok(a) = tcp.local_addr() {
                    info!(address = %a, tls = tls.is_some(), max_connections = adm.cap(), "forward input listening");
                }
                let socket_options = SocketOptions::of(&ctx.cfg);
                accept_loop(
                    || async {
                        let (s, a) = tcp.accept().await?;
                        socket_options.apply(&s, a);
                        Ok((s, Some(a)))
                    },
                    tls,
                    ctx,
                    sd,
                    adm,
                    tr,
                )
                .await
            });
        }
        #[cfg(unix)]
        if let Some(unix) = listeners.unix {
            any = true;
            let (ctx, sd, adm, tr) = (
                ctx.clone(),
                shutdown.clone(),
                admission.clone(),
                tracker.clone(),
            );
            tracker.spawn(async move {
                accept_loop(
                    || async { unix.accept().await.map(|(s, _)| (s, None)) },
                    None,
                    ctx,
                    sd,
                    adm,
                    tr,
                )
                .await
            });
        }
        if !any {
            return Err(ForwardError::NoListener);
        }
        shutdown.cancelled().await;
        tracker.close();
        if tokio::time::timeout(grace + Duration::from_secs(1), tracker.wait())
            .await
            .is_err()
        {
            warn!(
                "forward input: some connections did not finish within the shutdown grace period"
            );
        }
        Ok(())
    }
}

/// Binds per `cfg` and serves until `shutdown`. See [`ForwardServer::run`].
pub async fn serve(
    cfg: ForwardServerConfig,
    sink: Arc<dyn EventSink>,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    let listeners = ForwardListeners::bind(&cfg).await?;
    ForwardServer::new(cfg)?
        .run(listeners, sink, shutdown)
        .await
}

/// Serves already-bound `listeners` with `cfg` until `shutdown`. See [`ForwardServer::run`].
pub async fn run(
    listeners: ForwardListeners,
    cfg: ForwardServerConfig,
    sink: Arc<dyn EventSink>,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    ForwardServer::new(cfg)?
        .run(listeners, sink, shutdown)
        .await
}

/// Socket options of accepted TCP connections (`linger_timeout`, `send_keepalive_packet`).
#[derive(Debug, Clone, Copy)]
struct SocketOptions {
    linger: Option<Duration>,
    keepalive: bool,
}

impl SocketOptions {
    fn of(cfg: &ForwardServerConfig) -> Self {
        Self {
            linger: cfg.linger_timeout,
            keepalive: cfg.send_keepalive_packet,
        }
    }

    /// Sets the options; a failure is logged (as Fluentd does) and the connection served.
    fn apply(&self, s: &TcpStream, peer: SocketAddr) {
        let sock = socket2::SockRef::from(s);
        if let Some(l) = self.linger {
            if let Err(e) = sock.set_linger(Some(l)) {
                debug!(peer = %peer, error = %e, "cannot set SO_LINGER");
            }
        }
        if self.keepalive {
            if let Err(e) = sock.set_keepalive(true) {
                debug!(peer = %peer, error = %e, "cannot set SO_KEEPALIVE");
            }
        }
    }
}

fn load_tls(t: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, ForwardError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_path)
        .map_err(|e| ForwardError::Tls(format!("{}: {e}", t.cert_path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ForwardError::Tls(format!("{}: {e}", t.cert_path.display())))?;
    if certs.is_empty() {
        return Err(ForwardError::Tls(format!(
            "{}: no certificate found",
            t.cert_path.display()
        )));
    }
    let params = crate::private_key::KeyParams {
        key: "private_key_path",
        passphrase: "private_key_passphrase",
    };
    let pem = crate::private_key::read(&t.key_path, t.key_passphrase.as_ref(), params)
        .map_err(|e| ForwardError::Tls(e.to_string()))?;
    if pem.passphrase_unused {
        warn!(
            "private_key_passphrase has no effect: private_key_path {} is not encrypted",
            t.key_path.display()
        );
    }
    let key = PrivateKeyDer::from_pem_slice(pem.pem.as_bytes())
        .map_err(|e| ForwardError::Tls(format!("{}: {e}", t.key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ForwardError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn udp_heartbeat(sock: UdpSocket, ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let mut buf = [0u8; 128];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok((_, peer)) => {
                    // fluentd's in_forward answers every heartbeat datagram with one NUL byte.
                    if let Err(e) = sock.send_to(b"\0", peer).await {
                        debug!(error = %e, "heartbeat reply failed");
                    } else {
                        inc(&ctx.metrics.heartbeats, 1);
                    }
                }
                Err(e) => {
                    debug!(error = %e, "heartbeat receive failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

static CAP_REACHED: LogLimiter = LogLimiter::new(3, Duration::from_secs(10));
static EVICTED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static MALFORMED: LogLimiter = LogLimiter::new(10, Duration::from_secs(10));
static HANDSHAKE_FAILED: LogLimiter = LogLimiter::new(10, Duration::from_secs(10));
static TIMED_OUT: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static OVER_BUDGET: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static CLOSED: LogLimiter = LogLimiter::new(10, Duration::from_secs(10));

/// Admits `peer`: at once when the table has room, else after evicting the stalest
/// non-delivering connection (or, when every connection is active, once one closes).
/// `None` at shutdown.
async fn admit(
    admission: &Arc<Admission>,
    peer: &str,
    metrics: &ForwardMetrics,
    shutdown: &CancellationToken,
) -> Option<Ticket> {
    if let Some(t) = admission.try_admit(peer.to_string()) {
        return Some(t);
    }
    inc(&metrics.connection_cap_reached, 1);
    crate::warn_limited!(
        CAP_REACHED,
        peer,
        max_connections = admission.cap(),
        "forward input: connection limit reached; evicting the stalest connection that delivers nothing"
    );
    loop {
        if let Some(e) = admission.evict_stalest() {
            inc(&metrics.connections_evicted, 1);
            let (reason, idle) = match e.staleness {
                Staleness::NeverDelivered(d) => ("no complete frame since it connected", d),
                Staleness::Idle(d) => ("no frame for a while", d),
            };
            crate::warn_limited!(
                EVICTED,
                peer = %e.peer,
                reason,
                idle_ms = idle.as_millis() as u64,
                admitted = peer,
                "forward input: evicted a connection to admit a new one"
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = admission.wait_for_room() => {}
        }
        if let Some(t) = admission.try_admit(peer.to_string()) {
            return Some(t);
        }
    }
}

async fn accept_loop<S, F, Fut>(
    mut accept: F,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
    admission: Arc<Admission>,
    tracker: TaskTracker,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<(S, Option<SocketAddr>)>>,
{
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "forward accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        inc(&ctx.metrics.connections_accepted, 1);
        let peer_s = peer.map(|a| a.to_string()).unwrap_or_else(|| "unix".into());
        let Some(ticket) = admit(&admission, &peer_s, &ctx.metrics, &shutdown).await else {
            return;
        };
        let ctx = ctx.clone();
        let sd = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            ctx.metrics
                .connections_active
                .fetch_add(1, Ordering::Relaxed);
            let slot = ticket.slot();
            let result = match tls {
                Some(acc) => {
                    match tokio::time::timeout(ctx.cfg.handshake_timeout, acc.accept(stream)).await
                    {
                        Ok(Ok(s)) => connection::serve(s, peer, &ctx, slot, &sd).await,
                        Ok(Err(e)) => Err(ConnectionError::Io(e)),
                        Err(_) => Err(ConnectionError::TlsTimeout),
                    }
                }
                None => connection::serve(stream, peer, &ctx, slot, &sd).await,
            };
            log_end(&ctx.metrics, &peer_s, result);
            ctx.metrics
                .connections_active
                .fetch_sub(1, Ordering::Relaxed);
            drop(ticket);
        });
    }
}

/// Counts and logs how a connection ended (rate-limited: a flood of bad connections must not
/// flood the log).
fn log_end(m: &ForwardMetrics, peer: &str, result: Result<(), ConnectionError>) {
    match result {
        Ok(()) => debug!(peer, "forward connection closed"),
        Err(ConnectionError::Frame(e)) => {
            inc(&m.frames_malformed, 1);
            crate::warn_limited!(MALFORMED, peer, error = %e, "malformed forward frame; closing connection")
        }
        Err(ConnectionError::Handshake(r)) => {
            inc(&m.handshake_failures, 1);
            crate::warn_limited!(HANDSHAKE_FAILED, peer, reason = %r, "forward handshake failed; closing connection")
        }
        Err(e @ (ConnectionError::Timeout(_) | ConnectionError::TlsTimeout)) => {
            inc(&m.connections_timed_out, 1);
            crate::warn_limited!(TIMED_OUT, peer, reason = %e, "forward connection too slow; closing it")
        }
        Err(e @ ConnectionError::OverBudget(_)) => {
            crate::warn_limited!(OVER_BUDGET, peer, error = %e, "forward frame larger than the memory budget (<system> memory_budget); closing connection")
        }
        // Counted and logged when the eviction was decided.
        Err(ConnectionError::Evicted) => debug!(peer, "forward connection evicted"),
        Err(e) => crate::warn_limited!(CLOSED, peer, error = %e, "forward connection closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_options_are_set_on_accepted_connections() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, peer) = l.accept().await.unwrap();
        let sock = socket2::SockRef::from(&s);
        assert!(!sock.keepalive().unwrap());
        assert_eq!(sock.linger().unwrap(), None);
        let cfg = ForwardServerConfig {
            linger_timeout: Some(Duration::ZERO),
            send_keepalive_packet: true,
            ..Default::default()
        };
        SocketOptions::of(&cfg).apply(&s, peer);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.linger().unwrap(), Some(Duration::ZERO));
    }
}
