//! The Forward protocol server (fluentd's `in_forward`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::codec::{append_str_pair, encode_ack, DecodeOptions, ForwardDecoder, Frame, FrameError};
use super::handshake::{SecurityConfig, ServerHandshake};
use crate::event::{EventBatch, EventSink};

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
    /// Deepest accepted msgpack nesting.
    pub max_depth: usize,
    /// Largest decompressed CompressedPackedForward payload.
    pub max_decompressed_size: usize,
    /// A frame (or the handshake) must complete within this time after its first byte
    /// arrives, or the connection is closed (slow-loris protection).
    pub read_timeout: Duration,
    /// Idle connections (no partial frame) are closed after this long; `None` keeps them.
    pub idle_timeout: Option<Duration>,
    /// At most this many connections at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// Replace every tag with this one (`tag`).
    pub tag: Option<String>,
    /// Prefix every tag with `prefix.` (`add_tag_prefix`).
    pub add_tag_prefix: Option<String>,
    /// Add the client's hostname (the PING hostname when a handshake was done, else the
    /// client's IP address; no reverse DNS) under this key (`source_hostname_key`).
    pub source_hostname_key: Option<String>,
    /// Add the client's IP address under this key (`source_address_key`).
    pub source_address_key: Option<String>,
    /// Skip invalid events (non-map record, bad time) with a warning instead of failing.
    pub skip_invalid_event: bool,
    /// Answer UDP heartbeats on the same port.
    pub udp_heartbeat: bool,
    /// Also listen on this Unix socket path.
    pub unix_path: Option<PathBuf>,
    /// On shutdown, connections with a frame in flight get this long to finish it.
    pub shutdown_grace: Duration,
}

impl Default for ForwardServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 24224,
            security: None,
            tls: None,
            chunk_size_limit: super::codec::DEFAULT_MAX_FRAME_SIZE,
            max_depth: super::codec::DEFAULT_MAX_DEPTH,
            max_decompressed_size: super::codec::DEFAULT_MAX_DECOMPRESSED_SIZE,
            read_timeout: Duration::from_secs(30),
            idle_timeout: None,
            max_connections: 1024,
            tag: None,
            add_tag_prefix: None,
            source_hostname_key: None,
            source_address_key: None,
            skip_invalid_event: false,
            udp_heartbeat: true,
            unix_path: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

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

struct Ctx {
    cfg: ForwardServerConfig,
    sink: Arc<dyn EventSink>,
    metrics: Arc<ForwardMetrics>,
    decode: DecodeOptions,
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

    /// Serves `listeners` until `shutdown` is cancelled, then stops accepting, lets
    /// connections finish the frame in flight (bounded by `shutdown_grace`) and returns.
    pub async fn run(
        self,
        listeners: ForwardListeners,
        sink: Arc<dyn EventSink>,
        shutdown: CancellationToken,
    ) -> Result<(), ForwardError> {
        let ForwardServer { cfg, metrics, tls } = self;
        let decode = DecodeOptions {
            max_frame_size: cfg.chunk_size_limit,
            max_depth: cfg.max_depth,
            max_decompressed_size: cfg.max_decompressed_size,
            skip_invalid_event: cfg.skip_invalid_event,
        };
        let grace = cfg.shutdown_grace;
        let ctx = Arc::new(Ctx {
            cfg,
            sink,
            metrics,
            decode,
        });
        let limit = Arc::new(Semaphore::new(ctx.cfg.max_connections.max(1)));
        let tracker = TaskTracker::new();
        let mut any = false;

        if let Some(udp) = listeners.udp {
            any = true;
            let (ctx, sd) = (ctx.clone(), shutdown.clone());
            tracker.spawn(async move { udp_heartbeat(udp, ctx, sd).await });
        }
        if let Some(tcp) = listeners.tcp {
            any = true;
            let (ctx, sd, lim, tr, tls) = (
                ctx.clone(),
                shutdown.clone(),
                limit.clone(),
                tracker.clone(),
                tls.clone(),
            );
            tracker.spawn(async move {
                if let Ok(a) = tcp.local_addr() {
                    info!(address = %a, tls = tls.is_some(), "forward input listening");
                }
                accept_loop(
                    || async { tcp.accept().await.map(|(s, a)| (s, Some(a))) },
                    tls,
                    ctx,
                    sd,
                    lim,
                    tr,
                )
                .await
            });
        }
        #[cfg(unix)]
        if let Some(unix) = listeners.unix {
            any = true;
            let (ctx, sd, lim, tr) = (
                ctx.clone(),
                shutdown.clone(),
                limit.clone(),
                tracker.clone(),
            );
            tracker.spawn(async move {
                accept_loop(
                    || async { unix.accept().await.map(|(s, _)| (s, None)) },
                    None,
                    ctx,
                    sd,
                    lim,
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

async fn accept_loop<S, F, Fut>(
    mut accept: F,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
    limit: Arc<Semaphore>,
    tracker: TaskTracker,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<(S, Option<SocketAddr>)>>,
{
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
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
        let ctx = ctx.clone();
        let sd = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            ctx.metrics.connections_active.fetch_add(1, Ordering::Relaxed);
            let peer_s = peer.map(|a| a.to_string()).unwrap_or_else(|| "unix".into());
            let result = match tls {
                Some(acc) => match tokio::time::timeout(ctx.cfg.read_timeout, acc.accept(stream)).await {
                    Ok(Ok(s)) => handle_connection(s, peer, ctx.clone(), sd).await,
                    Ok(Err(e)) => Err(ConnError::Io(e)),
                    Err(_) => Err(ConnError::Timeout("TLS handshake")),
                },
                None => handle_connection(stream, peer, ctx.clone(), sd).await,
            };
            match result {
                Ok(()) => debug!(peer = %peer_s, "forward connection closed"),
                Err(ConnError::Frame(e)) => {
                    inc(&ctx.metrics.frames_malformed, 1);
                    warn!(peer = %peer_s, error = %e, "malformed forward frame; closing connection")
                }
                Err(ConnError::Handshake(r)) => {
                    inc(&ctx.metrics.handshake_failures, 1);
                    warn!(peer = %peer_s, reason = %r, "forward handshake failed; closing connection")
                }
                Err(e) => warn!(peer = %peer_s, error = %e, "forward connection closed"),
            }
            ctx.metrics.connections_active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the pipeline refused a batch: {0}")]
    Emit(String),
}

enum State {
    AwaitPing(ServerHandshake),
    Ready,
}

/// Frames with the same tag are joined into one batch until it holds this many events.
const COALESCE_EVENTS: usize = 1000;

/// Hands `batch` to the pipeline; waits until it is held (this is the backpressure: while
/// the pipeline is slow the connection is not read).
async fn emit(ctx: &Ctx, batch: EventBatch) -> Result<(), ConnError> {
    let n = batch.events.len() as u64;
    if let Err(e) = ctx.sink.emit(batch).await {
        inc(&ctx.metrics.emit_failures, 1);
        return Err(ConnError::Emit(e.to_string()));
    }
    inc(&ctx.metrics.events_received, n);
    Ok(())
}

struct FrameCount<'a> {
    n: u64,
    counter: &'a AtomicU64,
}

impl FrameCount<'_> {
    fn flush(&mut self) {
        if self.n > 0 {
            inc(self.counter, std::mem::take(&mut self.n));
        }
    }
}

impl Drop for FrameCount<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

async fn handle_connection<S>(
    stream: S,
    peer: Option<SocketAddr>,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut dec = ForwardDecoder::new(ctx.decode.clone());
    let cfg = &ctx.cfg;
    let address = peer.map(|a| a.ip().to_string()).unwrap_or_default();
    let mut hostname = address.clone();

    let mut state = match &cfg.security {
        Some(sec) => {
            let hs = ServerHandshake::new(sec);
            wr.write_all(&hs.helo()).await?;
            wr.flush().await?;
            State::AwaitPing(hs)
        }
        None => State::Ready,
    };
    // Deadline for the frame (or handshake) in progress.
    let mut frame_deadline: Option<Instant> =
        matches!(state, State::AwaitPing(_)).then(|| Instant::now() + cfg.read_timeout);
    let mut shutdown_deadline: Option<Instant> = None;

    // Events of consecutive frames with one tag, not yet emitted: (tag as decoded, batch).
    let mut pending: Option<(Arc<str>, EventBatch)> = None;
    // Frames decoded since the counter was last updated (one atomic add per socket read, and
    // one when the connection ends, whichever way).
    let mut frames = FrameCount {
        n: 0,
        counter: &ctx.metrics.frames_received,
    };
    loop {
        // Drain complete frames.
        loop {
            let next = dec
                .next_raw(&mut buf)
                .and_then(|r| r.map(|raw| dec.parse(raw)).transpose());
            let frame = match next {
                Ok(Some(f)) => {
                    frames.n += 1;
                    f
                }
                Ok(None) => break,
                Err(e) => {
                    // The frames before the broken one still go to the pipeline.
                    if let Some((_, p)) = pending.take() {
                        emit(&ctx, p).await?;
                    }
                    return Err(e.into());
                }
            };
            frame_deadline = None;
            match (&mut state, frame) {
                (State::AwaitPing(hs), Frame::Ping(ping)) => {
                    let sec = cfg.security.as_ref().expect("security configured");
                    let result = hs.check_ping(sec, &ping);
                    let pong = hs.pong(sec, &ping, &result);
                    wr.write_all(&pong).await?;
                    wr.flush().await?;
                    if let Err(reason) = result {
                        let _ = wr.shutdown().await;
                        return Err(ConnError::Handshake(reason));
                    }
                    hostname = String::from_utf8_lossy(&ping.client_hostname).into_owned();
                    state = State::Ready;
                }
                (State::AwaitPing(_), _) => {
                    return Err(ConnError::Handshake(
                        "expected PING as the first message".into(),
                    ));
                }
                (State::Ready, Frame::Heartbeat) => {}
                (State::Ready, Frame::Ping(_)) => {
                    if let Some((_, p)) = pending.take() {
                        emit(&ctx, p).await?;
                    }
                    return Err(ConnError::Frame(FrameError::BadShape("unexpected PING")));
                }
                (State::Ready, Frame::Events(ev)) => {
                    if ev.skipped > 0 {
                        inc(&ctx.metrics.events_skipped, ev.skipped as u64);
                        warn!(tag = %ev.tag, skipped = ev.skipped, "skipped invalid events");
                    }
                    if !ev.events.is_empty() {
                        let mut events = ev.events;
                        let mut pairs: Vec<(&str, &str)> = Vec::new();
                        if let Some(k) = &cfg.source_hostname_key {
                            pairs.push((k, &hostname));
                        }
                        if let Some(k) = &cfg.source_address_key {
                            pairs.push((k, &address));
                        }
                        if !pairs.is_empty() {
                            for e in events.iter_mut() {
                                if let Some(r) = append_str_pair(&e.record, &pairs) {
                                    e.record = r;
                                }
                            }
                        }
                        // Consecutive frames with the same tag (the decoder hands out one
                        // shared `Arc` per repeated tag) join one batch: a Docker client sends
                        // one Message frame per line, and one pipeline pass per line would
                        // cost more than decoding it. The batch is emitted before the
                        // next socket read, before an ack, and once it is large enough.
                        match &mut pending {
                            Some((src, p))
                                if Arc::ptr_eq(src, &ev.tag)
                                    && p.events.len() < COALESCE_EVENTS =>
                            {
                                p.events.append(&mut events);
                            }
                            _ => {
                                if let Some((_, p)) = pending.take() {
                                    emit(&ctx, p).await?;
                                }
                                let tag: Arc<str> = match (&cfg.tag, &cfg.add_tag_prefix) {
                                    (Some(t), Some(p)) => format!("{p}.{t}").into(),
                                    (Some(t), None) => t.as_str().into(),
                                    (None, Some(p)) => format!("{p}.{}", ev.tag).into(),
                                    (None, None) => ev.tag.clone(),
                                };
                                if events.capacity() < 16 {
                                    let mut v = Vec::with_capacity(64);
                                    v.append(&mut events);
                                    events = v;
                                }
                                pending = Some((ev.tag, EventBatch { tag, events }));
                            }
                        }
                    }
                    if let Some(chunk) = ev.chunk {
                        if let Some((_, p)) = pending.take() {
                            emit(&ctx, p).await?;
                        }
                        wr.write_all(&encode_ack(&chunk)).await?;
                        wr.flush().await?;
                        inc(&ctx.metrics.acks_sent, 1);
                    }
                }
            }
        }
        frames.flush();
        if let Some((_, p)) = pending.take() {
            emit(&ctx, p).await?;
        }
        if !buf.is_empty() && frame_deadline.is_none() {
            frame_deadline = Some(Instant::now() + cfg.read_timeout);
        }
        let pending = !buf.is_empty() || matches!(state, State::AwaitPing(_));
        if shutdown_deadline.is_none() && shutdown.is_cancelled() {
            if !pending {
                return Ok(());
            }
            shutdown_deadline = Some(Instant::now() + cfg.shutdown_grace);
        }
        let deadline = match (frame_deadline, shutdown_deadline, cfg.idle_timeout) {
            (Some(f), Some(s), _) => Some(f.min(s)),
            (Some(f), None, _) => Some(f),
            (None, Some(s), _) => Some(s),
            (None, None, Some(idle)) => Some(Instant::now() + idle),
            (None, None, None) => None,
        };
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let read = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, rd.read_buf(&mut buf))
                    .await
                    .map_err(|_| ()),
                None => Ok(rd.read_buf(&mut buf).await),
            }
        };
        let n = tokio::select! {
            r = read => match r {
                Ok(r) => r?,
                Err(()) => {
                    if pending {
                        return Err(ConnError::Timeout(if matches!(state, State::AwaitPing(_)) { "PING" } else { "the rest of a frame" }));
                    }
                    return Ok(()); // idle timeout
                }
            },
            _ = shutdown.cancelled(), if shutdown_deadline.is_none() && !pending => return Ok(()),
        };
        if n == 0 {
            if !buf.is_empty() {
                return Err(ConnError::Frame(FrameError::Truncated(
                    "connection closed inside a frame",
                )));
            }
            return Ok(());
        }
        inc(&ctx.metrics.bytes_received, n as u64);
    }
}
