//! A small Forward protocol client (for `logship cat`, `logship exec` and tests).
//!
//! ```no_run
//! # async fn demo() -> Result<(), logship::forward::ClientError> {
//! use logship::event::{Event, EventBatch, EventTime};
//! use logship::forward::{encode_record_from_json, ClientConfig, ForwardClient};
//!
//! let mut client = ForwardClient::connect(ClientConfig {
//!     addr: "127.0.0.1:24224".into(), // or "unix:///run/fluentd.sock"
//!     require_ack: true,
//!     ..ClientConfig::default()
//! })
//! .await?;
//! let record = encode_record_from_json(&serde_json::json!({"log": "hello", "n": 1}));
//! let batch = EventBatch::new("app.web", vec![Event::new(EventTime::now(), record)]);
//! client.send_batch(&batch).await?; // returns once the server acked the chunk
//! client.close().await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{
    parse_ack, write_array_len, write_bin, write_entry, write_event_time, write_map_len, write_str,
    FrameError, FrameScanner,
};
use super::handshake::{parse_helo, ClientHandshake, HandshakeError, UserCredential};
use crate::event::{EventBatch, EventTime};
use crate::secret::Secret;

/// How to reach and talk to a Forward server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`, `tcp://host:port`, `tls://host:port` (implies `tls`), `unix:///path` or an
    /// absolute path (Unix socket).
    pub addr: String,
    /// Shared key for the handshake; `None` when the server has no `<security>`.
    pub shared_key: Option<String>,
    /// Our hostname for the handshake.
    pub self_hostname: String,
    /// Username for user authentication.
    pub username: Option<String>,
    /// Password for user authentication.
    pub password: Option<String>,
    /// Use TLS.
    pub tls: bool,
    /// PEM file with CA certificates to trust (default: none, so set this or `tls_insecure`).
    pub tls_ca_path: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    pub tls_insecure: bool,
    /// Name to verify the certificate against (default: the host part of `addr`).
    pub tls_server_name: Option<String>,
    /// Check that the certificate is for the server's name (the chain is always checked
    /// unless `tls_insecure`).
    pub tls_verify_hostname: bool,
    /// Ask for an ack for every batch/message and wait for it.
    pub require_ack: bool,
    /// Timeout for connecting, the handshake, each write and each ack.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:24224".into(),
            shared_key: None,
            self_hostname: "logship-client".into(),
            username: None,
            password: None,
            tls: false,
            tls_ca_path: None,
            tls_insecure: false,
            tls_server_name: None,
            tls_verify_hostname: true,
            require_ack: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connect/read/write failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Timed out.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The server sent something unreadable.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The ack did not match the chunk we sent.
    #[error("ack mismatch: sent chunk {sent}, got {got}")]
    AckMismatch { sent: String, got: String },
    /// Bad configuration (address, TLS files).
    #[error("configuration error: {0}")]
    Config(String),
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to a Forward server. See the module docs for an example.
pub struct ForwardClient {
    io: Box<dyn Io>,
    cfg: ClientConfig,
    rbuf: BytesMut,
    scanner: FrameScanner,
    wbuf: Vec<u8>,
}

impl std::fmt::Debug for ForwardClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardClient")
            .field("addr", &self.cfg.addr)
            .finish()
    }
}

async fn with_timeout<T>(
    d: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| ClientError::Timeout(what))?
}

impl ForwardClient {
    /// Connects (and does the TLS and Forward handshakes when configured).
    pub async fn connect(cfg: ClientConfig) -> Result<Self, ClientError> {
        let t = cfg.timeout;
        let mut cfg = cfg;
        let addr = cfg.addr.clone();
        let io: Box<dyn Io> = if let Some(path) = addr
            .strip_prefix("unix://")
            .or(addr.starts_with('/').then_some(addr.as_str()))
        {
            #[cfg(unix)]
            {
                let s = with_timeout(t, "connect", async {
                    Ok(tokio::net::UnixStream::connect(path).await?)
                })
                .await?;
                Box::new(s)
            }
            #[cfg(not(unix))]
            {
                let _ = path;
                return Err(ClientError::Config(
                    "unix sockets are not supported here".into(),
                ));
            }
        } else {
            let hostport = if let Some(h) = addr.strip_prefix("tls://") {
                cfg.tls = true;
                h
            } else {
                addr.strip_prefix("tcp://").unwrap_or(&addr)
            };
            let tcp = with_timeout(t, "connect", async {
                Ok(tokio::net::TcpStream::connect(hostport).await?)
            })
            .await?;
            let _ = tcp.set_nodelay(true);
            if cfg.tls {
                let host = cfg.tls_server_name.clone().unwrap_or_else(|| {
                    hostport
                        .rsplit_once(':')
                        .map(|(h, _)| h.trim_matches(['[', ']']))
                        .unwrap_or(hostport)
                        .to_string()
                });
                let connector = tls_connector(&cfg)?;
                let name = rustls_pki_types::ServerName::try_from(host)
                    .map_err(|e| ClientError::Config(format!("TLS server name: {e}")))?;
                let s = with_timeout(t, "TLS handshake", async {
                    Ok(connector.connect(name, tcp).await?)
                })
                .await?;
                Box::new(s)
            } else {
                Box::new(tcp)
            }
        };
        let mut c = ForwardClient {
            io,
            cfg,
            rbuf: BytesMut::with_capacity(4096),
            scanner: FrameScanner::new(1 << 20, 32),
            wbuf: Vec::with_capacity(64 * 1024),
        };
        if let Some(key) = c.cfg.shared_key.clone() {
            with_timeout(t, "forward handshake", async {
                let helo = parse_helo(&c.read_frame().await?)?;
                let user = match (&c.cfg.username, &c.cfg.password) {
                    (Some(u), Some(p)) => Some(UserCredential {
                        username: u.clone(),
                        password: Secret::new(p.clone()),
                    }),
                    _ => None,
                };
                let hs = ClientHandshake::new(c.cfg.self_hostname.clone(), key, user);
                c.io.write_all(&hs.ping(&helo)).await?;
                c.io.flush().await?;
                let pong = c.read_frame().await?;
                hs.check_pong(&helo, &pong)?;
                Ok(())
            })
            .await?;
        }
        Ok(c)
    }

    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        loop {
            if let Some(n) = self.scanner.scan(&self.rbuf)? {
                return Ok(self.rbuf.split_to(n).freeze());
            }
            self.rbuf.reserve(4096);
            let n = self.io.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    fn new_chunk() -> String {
        new_chunk_id()
    }

    async fn send_and_ack(&mut self, chunk: Option<String>) -> Result<(), ClientError> {
        let t = self.cfg.timeout;
        let buf = std::mem::take(&mut self.wbuf);
        let r = with_timeout(t, "write", async {
            self.io.write_all(&buf).await?;
            self.io.flush().await?;
            Ok(())
        })
        .await;
        self.wbuf = buf;
        r?;
        if let Some(chunk) = chunk {
            let reply = with_timeout(t, "ack", self.read_frame()).await?;
            let got = parse_ack(&reply)
                .ok_or_else(|| ClientError::Protocol("reply is not {\"ack\": chunk}".into()))?;
            if got != chunk.as_bytes() {
                return Err(ClientError::AckMismatch {
                    sent: chunk,
                    got: String::from_utf8_lossy(got).into_owned(),
                });
            }
        }
        Ok(())
    }

    fn write_option(&mut self, size: Option<usize>) -> Option<String> {
        let chunk = self.cfg.require_ack.then(Self::new_chunk);
        let n = size.is_some() as u32 + chunk.is_some() as u32;
        write_map_len(&mut self.wbuf, n);
        if let Some(s) = size {
            write_str(&mut self.wbuf, b"size");
            write_uint(&mut self.wbuf, s as u64);
        }
        if let Some(c) = &chunk {
            write_str(&mut self.wbuf, b"chunk");
            write_str(&mut self.wbuf, c.as_bytes());
        }
        chunk
    }

    /// Sends `batch` in PackedForward mode (`size` = event count; with `require_ack`, a random
    /// base64 `chunk`, then waits for the matching ack). Records must be msgpack maps.
    pub async fn send_batch(&mut self, batch: &EventBatch) -> Result<(), ClientError> {
        self.wbuf.clear();
        let payload: usize = batch.events.iter().map(|e| e.record.len() + 11).sum();
        write_array_len(&mut self.wbuf, 3);
        write_str(&mut self.wbuf, batch.tag.as_bytes());
        // bin header, then entries written in place
        let mut entries = Vec::with_capacity(payload);
        for e in &batch.events {
            write_entry(&mut entries, e, false);
        }
        write_bin(&mut self.wbuf, &entries);
        let chunk = self.write_option(Some(batch.events.len()));
        self.send_and_ack(chunk).await
    }

    /// Sends one event in Message mode `[tag, time, record, option]`.
    pub async fn send_message(
        &mut self,
        tag: &str,
        time: EventTime,
        record: &[u8],
    ) -> Result<(), ClientError> {
        self.wbuf.clear();
        write_array_len(&mut self.wbuf, 4);
        write_str(&mut self.wbuf, tag.as_bytes());
        write_event_time(&mut self.wbuf, time);
        self.wbuf.extend_from_slice(record);
        let chunk = self.write_option(None);
        self.send_and_ack(chunk).await
    }

    /// Writes pre-encoded messages (see [`encode_packed_forward`]) within the configured
    /// timeout, then waits up to `ack_timeout` for an ack of every id in `acks` (in any order).
    /// Any error leaves the connection in an unknown state: drop it.
    pub async fn send_encoded(
        &mut self,
        bytes: &[u8],
        acks: &[String],
        ack_timeout: Duration,
    ) -> Result<(), ClientError> {
        with_timeout(self.cfg.timeout, "write", async {
            self.io.write_all(bytes).await?;
            self.io.flush().await?;
            Ok(())
        })
        .await?;
        if acks.is_empty() {
            return Ok(());
        }
        let mut pending: Vec<&str> = acks.iter().map(String::as_str).collect();
        with_timeout(ack_timeout, "ack", async {
            while !pending.is_empty() {
                let reply = self.read_frame().await?;
                let got = parse_ack(&reply)
                    .ok_or_else(|| ClientError::Protocol("reply is not {\"ack\": chunk}".into()))?;
                match pending.iter().position(|p| p.as_bytes() == got) {
                    Some(i) => {
                        pending.swap_remove(i);
                    }
                    None => {
                        return Err(ClientError::AckMismatch {
                            sent: pending.join(","),
                            got: String::from_utf8_lossy(got).into_owned(),
                        })
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// `true` when the server has closed this (idle, keep-alive) connection or sent something
    /// unexpected: checked without waiting before a pooled connection is reused.
    pub async fn is_stale(&mut self) -> bool {
        let mut probe = [0u8; 1];
        // Ready at once = EOF, an error or unsolicited bytes; pending = still open and idle.
        tokio::time::timeout(Duration::ZERO, self.io.read(&mut probe))
            .await
            .is_ok()
    }

    /// Sends raw bytes as they are (tests, replay).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Flushes and closes the connection.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.io.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

/// Appends one PackedForward message `[tag, bin(entries), {size, chunk?}]` for `events` to
/// `out`, or with `gzip` a CompressedPackedForward one (`compressed: "gzip"`). With
/// `send_metadata`, events carrying Forward v1.5 metadata are sent as `[[time, metadata],
/// record]` (see [`write_entry`]).
pub fn encode_packed_forward<'e>(
    out: &mut Vec<u8>,
    tag: &str,
    events: impl IntoIterator<Item = &'e crate::event::Event>,
    chunk: Option<&str>,
    gzip: bool,
    send_metadata: bool,
) -> std::io::Result<()> {
    let mut entries = Vec::new();
    let mut n = 0u64;
    for e in events {
        write_entry(&mut entries, e, send_metadata);
        n += 1;
    }
    if gzip {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(entries.len() / 4 + 64),
            flate2::Compression::fast(),
        );
        enc.write_all(&entries)?;
        entries = enc.finish()?;
    }
    write_array_len(out, 3);
    write_str(out, tag.as_bytes());
    write_bin(out, &entries);
    write_map_len(out, 1 + chunk.is_some() as u32 + gzip as u32);
    write_str(out, b"size");
    write_uint(out, n);
    if let Some(c) = chunk {
        write_str(out, b"chunk");
        write_str(out, c.as_bytes());
    }
    if gzip {
        write_str(out, b"compressed");
        write_str(out, b"gzip");
    }
    Ok(())
}

/// A new random chunk id (16 random bytes, base64), as Fluentd's clients make them.
pub fn new_chunk_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v < 128 {
        out.push(v as u8);
    } else if v <= u8::MAX as u64 {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= u16::MAX as u64 {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u32::MAX as u64 {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn write_json(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_uint(out, u);
            } else if let Some(i) = n.as_i64() {
                write_int(out, i);
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
            }
        }
        Value::String(s) => write_str(out, s.as_bytes()),
        Value::Array(a) => {
            write_array_len(out, a.len() as u32);
            for x in a {
                write_json(out, x);
            }
        }
        Value::Object(m) => {
            write_map_len(out, m.len() as u32);
            for (k, x) in m {
                write_str(out, k.as_bytes());
                write_json(out, x);
            }
        }
    }
}

/// Encodes a JSON value as msgpack. An object becomes a map (a valid record); any other value
/// is wrapped as `{"message": value}` so the result is always a record.
pub fn encode_record_from_json(v: &serde_json::Value) -> Bytes {
    let mut out = Vec::with_capacity(64);
    if v.is_object() {
        write_json(&mut out, v);
    } else {
        out.push(0x81);
        write_str(&mut out, b"message");
        write_json(&mut out, v);
    }
    Bytes::from(out)
}

fn tls_connector(cfg: &ClientConfig) -> Result<tokio_rustls::TlsConnector, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let config = if cfg.tls_insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        if let Some(p) = &cfg.tls_ca_path {
            for c in rustls_pki_types::CertificateDer::pem_file_iter(p)
                .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?
            {
                let c = c.map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
                roots
                    .add(c)
                    .map_err(|e| ClientError::Config(e.to_string()))?;
            }
        }
        if cfg.tls_verify_hostname {
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                .with_no_client_auth()
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Checks the chain against the roots but accepts a certificate for any name
/// (`tls_verify_hostname false`).
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
