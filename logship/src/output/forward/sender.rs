//! Connections to one server: kept open (keep-alive) and reused chunk after chunk.
//!
//! Each flush worker takes an idle connection from the server's pool (or opens a new one:
//! TCP, TLS when `transport tls`, then the Forward handshake when a shared key is set), sends
//! the chunk's messages, waits for their acks and puts the connection back. A pooled
//! connection the server has closed meanwhile is noticed before use and replaced. After any
//! error the connection is dropped: its state (a half-written message, a late ack) is
//! unknown. The pool holds at most one connection per flush worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::forward::{ClientConfig, ClientError, ForwardClient};

/// Counters of one server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Chunks delivered to this server (acked, or written when acks are off).
    pub chunks: AtomicU64,
    /// Events delivered to this server.
    pub events: AtomicU64,
    /// Failed sends (each chunk was then retried, possibly elsewhere).
    pub failures: AtomicU64,
    /// Connections opened (TCP/TLS and handshake done).
    pub connections: AtomicU64,
    /// Connections refused by the Forward handshake (wrong shared key, credentials).
    pub handshake_failures: AtomicU64,
}

/// One `<server>`.
pub struct Sender {
    /// `name`, or `host:port`.
    pub name: String,
    /// `host:port` (also the heartbeat address).
    pub addr: String,
    cfg: ClientConfig,
    pool: Mutex<Vec<ForwardClient>>,
    pub stats: ServerStats,
}

impl Sender {
    pub fn new(name: String, addr: String, cfg: ClientConfig) -> Self {
        Self {
            name,
            addr,
            cfg,
            pool: Mutex::new(Vec::new()),
            stats: ServerStats::default(),
        }
    }

    async fn connection(&self) -> Result<ForwardClient, ClientError> {
        loop {
            let pooled = self.pool.lock().unwrap().pop();
            match pooled {
                Some(mut c) => {
                    if !c.is_stale().await {
                        return Ok(c);
                    }
                }
                None => break,
            }
        }
        match ForwardClient::connect(self.cfg.clone()).await {
            Ok(c) => {
                self.stats.connections.fetch_add(1, Ordering::Relaxed);
                Ok(c)
            }
            Err(e) => {
                if matches!(e, ClientError::Handshake(_)) {
                    self.stats
                        .handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    /// Sends pre-encoded messages and waits for the acks `acks` (none: done once written).
    pub async fn send(
        &self,
        bytes: &[u8],
        acks: &[String],
        ack_timeout: Duration,
    ) -> Result<(), ClientError> {
        let mut c = self.connection().await?;
        c.send_encoded(bytes, acks, ack_timeout).await?;
        self.pool.lock().unwrap().push(c);
        Ok(())
    }

    /// Closes the idle connections.
    pub fn close_idle(&self) {
        self.pool.lock().unwrap().clear();
    }
}
