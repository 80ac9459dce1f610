//! `@type forward`: a buffered output that sends events to other Forward servers (logship or
//! Fluentd aggregators), with load balancing, failover and at-least-once delivery.
//!
//! - [`balancer`]: weighted choice among the available regular servers; standby servers only
//!   when every regular one is down;
//! - [`health`]: failure detection (send failures, heartbeats tcp/udp/none, `recover_wait`);
//! - [`sender`]: keep-alive connections per server (TCP or TLS, shared-key handshake).
//!
//! # Delivery
//!
//! `emit` resolves once the batch is in the buffer (that is when the Forward input acks its
//! own client). Flush workers (`flush_thread_count`) take chunks from the buffer and send each
//! as one PackedForward message per tag in the chunk (CompressedPackedForward with
//! `compress gzip`), all written on one connection to one server. With
//! `require_ack_response true` every message carries a `chunk` id and the chunk counts as
//! delivered only when every id was acked within `ack_response_timeout`; without acks, once
//! the bytes are written (at-most-once: a connection that dies right after the write loses
//! the chunk — Fluentd's default too).
//!
//! A failed send (connect, handshake, write, ack timeout, wrong ack) marks that server down
//! and the same chunk is sent **at once to another available server** that has not failed it
//! since the last wait; when there is none the worker waits (`retry_type`, `retry_wait`,
//! `retry_max_interval`, `retry_randomize`: [`crate::buffer::retry`]) and
//! tries again. It gives up (ERROR log, `dropped_*` counters) after `retry_max_times` failed
//! attempts or `retry_timeout`, unless `retry_forever`. The buffer frees a chunk only after it
//! is delivered or given up.
//!
//! **Chunk ids are stable per chunk**: made once when the chunk is first sent and reused for
//! every resend of the same bytes, to any server (Fluentd makes a new id per attempt). A
//! resend after a lost ack delivers the events twice to the tier below — the receiving side
//! deduplicates nothing; the stable id only lets logs (and a future receiver) tie the copies
//! together. Duplicates are kept out of Elasticsearch by its deterministic document ids.
//!
//! # Shutdown
//!
//! The buffer is closed; workers deliver what is left (staged chunk included) for up to
//! [`SHUTDOWN_GRACE`], then give up on the rest (counted and logged). With a file buffer
//! (`<buffer @type file>`), what is not delivered stays on disk and is resumed at the next
//! start instead; without `flush_at_shutdown` such a buffer is not drained at all.
//!
//! See `docs/forward-output.md`.

pub mod balancer;
pub mod config;
pub mod health;
pub mod sender;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::buffer::{Buffer, BufferSettings, Chunk, RetryPolicy};
use crate::event::{BoxFuture, EmitError, EventBatch};
use crate::forward::{encode_packed_forward, new_chunk_id, ClientConfig};
use crate::output::Output;
pub use config::{ForwardOutputConfig, ForwardServerTarget};

use balancer::{Balancer, Slot};
use health::{Health, HeartbeatType};
use sender::Sender;

pub use sender::ServerStats;

/// How long shutdown keeps delivering what is still buffered.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Counters of a forward output (all servers).
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Events accepted into the buffer.
    pub received: AtomicU64,
    /// Chunks delivered (acked, or written when acks are off).
    pub delivered_chunks: AtomicU64,
    /// Events delivered.
    pub delivered_events: AtomicU64,
    /// Failed send attempts (each one retried, on another server when one is available).
    pub failed_sends: AtomicU64,
    /// Events of failed sends, each sent again (a chunk retried twice counts its events twice).
    pub retried_events: AtomicU64,
    /// Failed sends that were an `ack_response_timeout`.
    pub ack_timeouts: AtomicU64,
    /// Chunks given up (`retry_max_times`, `retry_timeout`, or still failing at shutdown).
    pub dropped_chunks: AtomicU64,
    /// Events of the chunks given up.
    pub dropped_events: AtomicU64,
}

/// Checked settings of the output.
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub require_ack: bool,
    pub ack_timeout: Duration,
    pub gzip: bool,
    /// `send_metadata`: re-send Forward v1.5 metadata (`[[time, metadata], record]`).
    pub send_metadata: bool,
    pub heartbeat: HeartbeatType,
    pub heartbeat_interval: Duration,
    pub recover_wait: Duration,
    pub buffer: BufferSettings,
    pub flush_thread_count: usize,
    /// `retry_*` of `<buffer>`: waits, `retry_timeout`, `retry_max_times`.
    pub retry: RetryPolicy,
}

/// The output.
pub struct ForwardOutput {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stop_heartbeats: CancellationToken,
}

struct Inner {
    name: String,
    settings: ForwardSettings,
    buffer: Buffer,
    servers: Vec<Sender>,
    health: Vec<Arc<Health>>,
    balancer: Balancer,
    stats: ForwardStats,
    /// Fires [`SHUTDOWN_GRACE`] after shutdown began: in-flight sends and waits stop.
    give_up: CancellationToken,
}

fn client_config(cfg: &ForwardOutputConfig, i: usize) -> Result<ClientConfig, String> {
    let s = &cfg.servers[i];
    let hostname = cfg
        .self_hostname
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    if let Some(p) = &cfg.tls_cert_path {
        if !std::path::Path::new(p).is_file() {
            return Err(format!("tls_cert_path {p}: no such file"));
        }
    }
    Ok(ClientConfig {
        addr: host_port(&s.host, s.port),
        shared_key: s
            .shared_key
            .as_ref()
            .or(cfg.shared_key.as_ref())
            .map(|k| k.expose().to_string()),
        self_hostname: hostname,
        username: s.username.clone(),
        password: s.password.as_ref().map(|p| p.expose().to_string()),
        tls: cfg.tls,
        tls_ca_path: cfg.tls_cert_path.as_ref().map(Into::into),
        tls_insecure: cfg.tls_insecure_mode,
        tls_server_name: None,
        tls_verify_hostname: cfg.tls_verify_hostname,
        require_ack: cfg.require_ack_response,
        timeout: cfg.send_timeout.max(Duration::from_millis(1)),
    })
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl ForwardSettings {
    pub fn from_config(cfg: &ForwardOutputConfig) -> Self {
        let b = cfg.buffer.as_ref();
        Self {
            require_ack: cfg.require_ack_response,
            ack_timeout: cfg.ack_response_timeout,
            gzip: cfg.compress == "gzip",
            send_metadata: cfg.send_metadata,
            heartbeat: HeartbeatType::parse(&cfg.heartbeat_type),
            heartbeat_interval: cfg.heartbeat_interval,
            recover_wait: cfg.recover_wait,
            buffer: BufferSettings::from_config(b),
            flush_thread_count: b.map_or(1, |b| b.flush_thread_count.max(1) as usize),
            retry: RetryPolicy::from_config(b),
        }
    }
}

impl ForwardOutput {
    /// Checks `cfg` and starts the flush workers and heartbeats (needs a Tokio runtime).
    pub fn new(cfg: &ForwardOutputConfig, id: Option<&str>) -> Result<Self, String> {
        if cfg.servers.is_empty() {
            return Err("no <server>".into());
        }
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| "the forward output needs a Tokio runtime".to_string())?;
        let settings = ForwardSettings::from_config(cfg);
        let name = id.unwrap_or("forward").to_string();
        let mut servers = Vec::new();
        let mut health = Vec::new();
        for (i, s) in cfg.servers.iter().enumerate() {
            let cc = client_config(cfg, i)?;
            let sname = s.name.clone().unwrap_or_else(|| cc.addr.clone());
            health.push(Arc::new(Health::new(
                sname.clone(),
                settings.heartbeat,
                settings.recover_wait,
            )));
            servers.push(Sender::new(sname, cc.addr.clone(), cc));
        }
        let balancer = Balancer::new(
            cfg.servers
                .iter()
                .map(|s| Slot {
                    weight: s.weight,
                    standby: s.standby,
                })
                .collect(),
        );
        let inner = Arc::new(Inner {
            buffer: Buffer::with_settings(&name, settings.buffer.clone())
                .map_err(|e| e.to_string())?,
            name,
            settings,
            servers,
            health,
            balancer,
            stats: ForwardStats::default(),
            give_up: CancellationToken::new(),
        });
        let stop_heartbeats = CancellationToken::new();
        let mut tasks: Vec<_> = (0..inner.settings.flush_thread_count)
            .map(|_| rt.spawn(inner.clone().worker()))
            .collect();
        for (s, h) in inner.servers.iter().zip(&inner.health) {
            tasks.push(rt.spawn(health::heartbeat_loop(
                h.clone(),
                inner.settings.heartbeat,
                s.addr.clone(),
                inner.settings.heartbeat_interval,
                stop_heartbeats.clone(),
            )));
        }
        Ok(Self {
            inner,
            tasks: Mutex::new(tasks),
            stop_heartbeats,
        })
    }

    /// Counters of the whole output.
    pub fn stats(&self) -> &ForwardStats {
        &self.inner.stats
    }

    /// Per server, in config order: (name, counters, up).
    pub fn servers(&self) -> Vec<(&str, &ServerStats, bool)> {
        self.inner
            .servers
            .iter()
            .zip(&self.inner.health)
            .map(|(s, h)| (s.name.as_str(), &s.stats, h.is_up()))
            .collect()
    }
}

impl Inner {
    async fn worker(self: Arc<Self>) {
        while let Some(chunk) = self.buffer.take().await {
            if self.deliver(&chunk).await {
                self.buffer.release(&chunk);
            }
        }
    }

    /// The chunk's messages (one per run of the same tag) and their ack ids.
    fn encode(&self, chunk: &Chunk) -> (Vec<u8>, Vec<String>) {
        let mut out = Vec::with_capacity(chunk.bytes as usize + 64);
        let mut acks = Vec::new();
        let mut i = 0;
        while i < chunk.batches.len() {
            let tag = &chunk.batches[i].tag;
            let mut j = i + 1;
            while j < chunk.batches.len() && chunk.batches[j].tag == *tag {
                j += 1;
            }
            let id = self.settings.require_ack.then(new_chunk_id);
            let events = chunk.batches[i..j].iter().flat_map(|b| b.events.iter());
            let s = &self.settings;
            if let Err(e) = encode_packed_forward(
                &mut out,
                tag,
                events,
                id.as_deref(),
                s.gzip,
                s.send_metadata,
            ) {
                // Only gzip into a Vec can fail here, which it does not; keep the plain form.
                tracing::error!(output = %self.name, error = %e, "cannot compress a chunk");
            }
            acks.extend(id);
            i = j;
        }
        (out, acks)
    }

    /// Counts and logs a chunk that will not be delivered; returns true (the chunk is done).
    fn give_up(&self, chunk: &Chunk, why: &str, last_error: &str) -> bool {
        self.stats.dropped_chunks.fetch_add(1, Ordering::Relaxed);
        self.stats
            .dropped_events
            .fetch_add(chunk.records, Ordering::Relaxed);
        tracing::error!(output = %self.name, events = chunk.records, error = %last_error, "giving up on a chunk: {why}");
        true
    }

    /// At shutdown: a file buffer keeps the chunk on disk for the next start (returns false:
    /// not done, not released); a memory buffer cannot, so the chunk is given up.
    fn stop_at_shutdown(&self, chunk: &Chunk, last_error: &str) -> bool {
        if self.buffer.is_persistent() {
            tracing::info!(output = %self.name, events = chunk.records, error = %last_error, "shutdown: chunk not delivered; it stays in the file buffer for the next start");
            return false;
        }
        self.give_up(chunk, "still undelivered at shutdown", last_error)
    }

    /// Delivers `chunk` to one server, failing over and retrying. True when the chunk is
    /// done (delivered or given up); false when it stays in a file buffer at shutdown.
    async fn deliver(&self, chunk: &Chunk) -> bool {
        if chunk.records == 0 {
            return true;
        }
        let (bytes, acks) = self.encode(chunk);
        let started = Instant::now();
        let mut failures = 0u64;
        let mut waits = 0u32;
        let mut last_error = String::new();
        let mut tried = vec![false; self.servers.len()];
        loop {
            if self.give_up.is_cancelled() {
                return self.stop_at_shutdown(chunk, &last_error);
            }
            // A server that already failed this chunk since the last wait is not retried
            // before the next wait (no busy loop when servers come back at once).
            let pick = self
                .balancer
                .pick(|i| self.health[i].is_available() && !tried[i]);
            let Some(i) = pick else {
                tried.iter_mut().for_each(|t| *t = false);
                let wait = self.settings.retry.wait(waits);
                waits += 1;
                if self.settings.retry.past_timeout(started.elapsed(), wait) {
                    return self.give_up(chunk, "retry_timeout exceeded", &last_error);
                }
                tracing::warn!(output = %self.name, events = chunk.records, retry_in_ms = wait.as_millis() as u64, error = %last_error, "no forward server available; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.give_up.cancelled() => {}
                }
                continue;
            };
            let server = &self.servers[i];
            let r = tokio::select! {
                r = server.send(&bytes, &acks, self.settings.ack_timeout) => r,
                _ = self.give_up.cancelled() => continue,
            };
            match r {
                Ok(()) => {
                    self.health[i].send_ok();
                    server.stats.chunks.fetch_add(1, Ordering::Relaxed);
                    server
                        .stats
                        .events
                        .fetch_add(chunk.records, Ordering::Relaxed);
                    self.stats.delivered_chunks.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .delivered_events
                        .fetch_add(chunk.records, Ordering::Relaxed);
                    return true;
                }
                Err(e) => {
                    tried[i] = true;
                    failures += 1;
                    server.stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.stats.failed_sends.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .retried_events
                        .fetch_add(chunk.records, Ordering::Relaxed);
                    if matches!(e, crate::forward::ClientError::Timeout("ack")) {
                        self.stats.ack_timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    last_error = format!("{}: {e}", server.name);
                    self.health[i].send_failed(&e.to_string());
                    tracing::warn!(output = %self.name, server = %server.name, events = chunk.records, attempt = failures, error = %e, "forward send failed; the chunk is retried");
                    if self.settings.retry.past_max_times(failures) {
                        return self.give_up(chunk, "retry_max_times exceeded", &last_error);
                    }
                }
            }
        }
    }
}

impl Output for ForwardOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let n = batch.len() as u64;
            self.inner.buffer.push(batch.clone()).await?;
            self.inner.stats.received.fetch_add(n, Ordering::Relaxed);
            Ok(())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let grace = self.inner.buffer.shutdown_grace(SHUTDOWN_GRACE);
            let give_up = self.inner.give_up.clone();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                give_up.cancel();
            });
            self.inner.buffer.close();
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
            let n_workers = self.inner.settings.flush_thread_count;
            let mut it = tasks.into_iter();
            for w in it.by_ref().take(n_workers) {
                let _ = w.await;
            }
            timer.abort();
            self.stop_heartbeats.cancel();
            for t in it {
                let _ = t.await;
            }
            for s in &self.inner.servers {
                s.close_idle();
            }
            self.inner.buffer.sync().await;
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let st = &self.inner.stats;
            tracing::info!(
                output = %self.inner.name,
                received = g(&st.received), delivered = g(&st.delivered_events),
                chunks = g(&st.delivered_chunks), failed_sends = g(&st.failed_sends),
                ack_timeouts = g(&st.ack_timeouts), dropped = g(&st.dropped_events),
                per_server = %self.inner.servers.iter().map(|s| format!("{}={}", s.name, g(&s.stats.events))).collect::<Vec<_>>().join(","),
                "forward output stopped"
            );
        })
    }

    fn stats(&self) -> crate::metrics::OutputStats {
        let st = &self.inner.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::metrics::OutputStats {
            delivered: Some(g(&st.delivered_events)),
            retries: Some(g(&st.retried_events)),
            dead_lettered: Some(g(&st.dropped_events)),
            requests: Some(g(&st.delivered_chunks) + g(&st.failed_sends)),
            failed_requests: Some(g(&st.failed_sends)),
            buffer: Some(crate::metrics::BufferGauges::of(&self.inner.buffer)),
        }
    }
}
