//! One Forward connection, from its first byte to its close: handshake, frames, events into
//! the pipeline, acks.
//!
//! The loop reads into a [`RecvBuffer`] (sized under the memory budget), splits complete
//! frames off it and handles each:
//!
//! - `PING` (with `<security>`): checked, answered with `PONG`; anything else before it is
//!   refused;
//! - events: consecutive frames with one tag are joined into one batch, emitted before the next
//!   socket read, before an ack, and at [`COALESCE_EVENTS`] events; a `CompressedPackedForward`
//!   payload is inflated window by window ([`super::inflate`]), each window reserved from the
//!   budget first and emitted before the next one is inflated;
//! - `chunk` → `{"ack": chunk}` once the pipeline holds every event of the frame;
//! - heartbeat `nil`: nothing.
//!
//! While the pipeline (or the budget) makes the connection wait, the socket is not read: TCP
//! backpressure. The frame in progress must complete within the deadlines of
//! [`super::deadline`]; the connection closes when it is evicted ([`super::admission`]), at
//! shutdown once no frame is in flight (or after `shutdown_grace`), after its first message
//! with `deny_keepalive`, and on any malformed frame (the frames before it still reach the
//! pipeline).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::admission::Slot;
use super::codec::{
    append_str_pair, write_ack, CompressedFrame, DecodeOptions, EventsFrame, ForwardDecoder, Frame,
    FrameError, FrameParser, Parsed,
};
use super::deadline::{FrameClock, FrameLimits, Missed};
use super::handshake::ServerHandshake;
use super::hostname::HostnameResolver;
use super::inflate::{Inflater, STREAM_WINDOW};
use super::recv_buffer::RecvBuffer;
use super::server::{ForwardMetrics, ForwardServerConfig};
use crate::event::{EventBatch, EventSink};
use crate::log_limit::LogLimiter;
use crate::memory_budget::{MemoryBudget, OverBudget};

/// Frames with the same tag are joined into one batch until it holds this many events.
pub const COALESCE_EVENTS: usize = 1000;

/// What every connection of one server shares.
pub(crate) struct Ctx {
    pub cfg: ForwardServerConfig,
    pub sink: Arc<dyn EventSink>,
    pub metrics: Arc<ForwardMetrics>,
    pub decode: DecodeOptions,
    pub limits: FrameLimits,
    pub budget: Arc<MemoryBudget>,
    pub hostnames: HostnameResolver,
}

/// Why a connection ended early (a clean close is `Ok`).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// A malformed frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The handshake failed (the reason went into the PONG).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame missed its deadline (slow-loris protection).
    #[error("{}", .0.describe())]
    Timeout(Missed),
    /// The TLS handshake did not complete within `handshake_timeout`.
    #[error("TLS handshake not complete within handshake_timeout")]
    TlsTimeout,
    /// A frame larger than the whole memory budget.
    #[error("frame refused: {0}")]
    OverBudget(#[from] OverBudget),
    /// The pipeline refused a batch (no ack; the client resends).
    #[error("the pipeline refused a batch: {0}")]
    Emit(String),
    /// Evicted to admit a new connection.
    #[error("evicted to admit a new connection")]
    Evicted,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Frames decoded since the counter was last updated (one atomic add per socket read, and one
/// when the connection ends, whichever way).
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

static CHUNK_WARNINGS: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));

enum State {
    AwaitPing(ServerHandshake),
    Ready,
}

/// What the loop does after a frame.
enum Next {
    Continue,
    /// `deny_keepalive`: the first message was handled, close now.
    Close,
}

/// Serves one connection (see the module docs).
pub(crate) async fn serve<S>(
    stream: S,
    peer: Option<SocketAddr>,
    ctx: &Ctx,
    slot: &Slot,
    shutdown: &CancellationToken,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Reads and writes take turns (a reply is written between reads), so the stream is not
    // split: no lock between two halves on every read and write.
    let mut conn = Connection {
        ctx,
        slot,
        io: stream,
        peer,
        hostname: None,
        pending: None,
        decoder: ForwardDecoder::new(ctx.decode.clone()),
        clock: FrameClock::new(ctx.limits),
        reply: Vec::new(),
    };
    let mut buf = RecvBuffer::new(ctx.budget.clone());
    let cfg = &ctx.cfg;
    let mut state = match &cfg.security {
        Some(sec) => {
            let hs = ServerHandshake::new(sec);
            conn.write(&hs.helo(!cfg.deny_keepalive)).await?;
            conn.clock.start_now(Instant::now());
            State::AwaitPing(hs)
        }
        None => State::Ready,
    };
    let mut shutdown_deadline: Option<Instant> = None;
    let mut frames = FrameCount {
        n: 0,
        counter: &ctx.metrics.frames_received,
    };
    // Waited on at every read: made once, so that a read does not register and deregister
    // two waiters (a lock each).
    let evicted = slot.evicted();
    tokio::pin!(evicted);
    let stopping = shutdown.cancelled();
    tokio::pin!(stopping);
    // When the bytes being handled arrived (one clock read per socket read).
    let mut now = Instant::now();
    loop {
        // Handle every complete frame in the buffer.
        loop {
            let raw = match conn.decoder.next_raw(buf.bytes()) {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(e) => {
                    // The frames before the broken one still go to the pipeline.
                    conn.emit_pending().await?;
                    return Err(e.into());
                }
            };
            frames.n += 1;
            slot.frame_completed(now.into_std());
            conn.clock.frame_completed(now, buf.len());
            let size = raw.len();
            let parsed = match conn.decoder.parse_deferred(raw) {
                Ok(p) => p,
                Err(e) => {
                    conn.emit_pending().await?;
                    return Err(e.into());
                }
            };
            let next = match (&mut state, parsed) {
                (State::AwaitPing(hs), Parsed::Frame(Frame::Ping(ping))) => {
                    let sec = cfg.security.as_ref().expect("security configured");
                    let result = hs.check_ping(sec, &ping, peer.map(|p| p.ip()));
                    conn.write(&hs.pong(sec, &ping, &result)).await?;
                    if let Err(reason) = result {
                        let _ = conn.io.shutdown().await;
                        return Err(ConnectionError::Handshake(reason));
                    }
                    state = State::Ready;
                    Next::Continue
                }
                (State::AwaitPing(_), _) => {
                    return Err(ConnectionError::Handshake(
                        "expected PING as the first message".into(),
                    ));
                }
                (State::Ready, Parsed::Frame(Frame::Heartbeat)) => conn.after_message(),
                (State::Ready, Parsed::Frame(Frame::Ping(_))) => {
                    conn.emit_pending().await?;
                    return Err(FrameError::BadShape("unexpected PING").into());
                }
                (State::Ready, Parsed::Frame(Frame::Events(ev))) => {
                    conn.warn_if_large(&ev.tag, size);
                    conn.events(ev).await?
                }
                (State::Ready, Parsed::Compressed(cf)) => {
                    conn.warn_if_large(&cf.tag, size);
                    conn.compressed(cf).await?
                }
            };
            if let Next::Close = next {
                // Closed by dropping the socket, as Fluentd does: with `linger_timeout 0`
                // that is a reset, else the FIN handshake.
                conn.emit_pending().await?;
                return Ok(());
            }
        }
        frames.flush();
        conn.emit_pending().await?;

        let partial = !buf.is_empty() || matches!(state, State::AwaitPing(_));
        if shutdown_deadline.is_none() && shutdown.is_cancelled() {
            if !partial {
                return Ok(());
            }
            shutdown_deadline = Some(Instant::now() + cfg.shutdown_grace);
        }
        if !partial {
            buf.shrink_if_quiet();
        }

        // Room for the next read; a large frame may have to wait for the memory budget.
        if let Err(size) = buf.try_make_room(conn.decoder.known_frame_len()) {
            let waited_from = Instant::now();
            inc(&ctx.metrics.memory_waits, 1);
            slot.set_busy(true);
            let room = tokio::select! {
                r = buf.wait_for_room(size) => r,
                _ = &mut evicted => return Err(ConnectionError::Evicted),
                // Shutdown while waiting for the budget: handled at the top of the loop.
                _ = &mut stopping, if shutdown_deadline.is_none() => {
                    slot.set_busy(false);
                    continue;
                }
                _ = sleep_until_or_never(shutdown_deadline) => {
                    return Err(ConnectionError::Timeout(Missed::ReadTimeout));
                }
            };
            slot.set_busy(false);
            if let Err(e) = room {
                inc(&ctx.metrics.frames_over_budget, 1);
                return Err(e.into());
            }
            conn.clock.credit(waited_from.elapsed());
        }

        let (deadline, missed) = match (conn.clock.deadline(), shutdown_deadline) {
            (Some((f, _)), Some(s)) if s < f => (Some(s), Some(Missed::ReadTimeout)),
            (Some((f, m)), _) => (Some(f), Some(m)),
            (None, Some(s)) => (Some(s), None),
            (None, None) => (cfg.idle_timeout.map(|i| Instant::now() + i), None),
        };
        let room = buf.room();
        let io = &mut conn.io;
        let read = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, io.read_buf(buf.bytes()))
                    .await
                    .ok(),
                None => Some(io.read_buf(buf.bytes()).await),
            }
        };
        let n = tokio::select! {
            // The read first: when it is ready the others are not polled.
            biased;
            r = read => match r {
                Some(r) => r?,
                None => {
                    // A deadline passed: a late frame, or an idle connection past idle_timeout.
                    return match missed {
                        Some(m) if partial => Err(ConnectionError::Timeout(m)),
                        _ => Ok(()),
                    };
                }
            },
            _ = &mut evicted => return Err(ConnectionError::Evicted),
            _ = &mut stopping, if shutdown_deadline.is_none() && !partial => return Ok(()),
        };
        if n == 0 {
            if !buf.is_empty() {
                return Err(FrameError::Truncated("connection closed inside a frame").into());
            }
            return Ok(());
        }
        buf.after_read(n, room);
        now = Instant::now();
        conn.clock.received(now, n, buf.len());
        inc(&ctx.metrics.bytes_received, n as u64);
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The per-connection state the frame handlers need.
struct Connection<'c, S> {
    ctx: &'c Ctx,
    slot: &'c Slot,
    io: S,
    peer: Option<SocketAddr>,
    /// The peer's name for `source_hostname_key`, found on first use.
    hostname: Option<String>,
    /// Events of consecutive frames with one tag, not yet emitted: (tag as decoded, batch).
    pending: Option<(Arc<str>, EventBatch)>,
    decoder: ForwardDecoder,
    clock: FrameClock,
    /// The bytes of the last reply (an ack), reused.
    reply: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// The message was handled: with `deny_keepalive` the connection closes now.
    fn after_message(&self) -> Next {
        if self.ctx.cfg.deny_keepalive {
            Next::Close
        } else {
            Next::Continue
        }
    }

    fn warn_if_large(&self, tag: &str, size: usize) {
        let Some(limit) = self.ctx.cfg.chunk_size_warn_limit else {
            return;
        };
        if size > limit {
            inc(&self.ctx.metrics.chunk_size_warnings, 1);
            let host = self.peer_address();
            crate::warn_limited!(
                CHUNK_WARNINGS,
                tag,
                host,
                limit,
                size,
                "Input chunk size is larger than 'chunk_size_warn_limit'"
            );
        }
    }

    fn peer_address(&self) -> String {
        self.peer.map(|a| a.ip().to_string()).unwrap_or_default()
    }

    /// Hands `batch` to the pipeline and waits until it holds it (while the pipeline is slow
    /// the connection is not read: backpressure). The wait is not held against the client.
    async fn emit(&mut self, batch: EventBatch) -> Result<(), ConnectionError> {
        let n = batch.events.len() as u64;
        // Only a frame in progress has a clock to credit.
        let started = self.clock.in_progress().then(Instant::now);
        self.slot.set_busy(true);
        let r = self.ctx.sink.emit(batch).await;
        self.slot.set_busy(false);
        if let Some(t) = started {
            self.clock.credit(t.elapsed());
        }
        if let Err(e) = r {
            inc(&self.ctx.metrics.emit_failures, 1);
            return Err(ConnectionError::Emit(e.to_string()));
        }
        inc(&self.ctx.metrics.events_received, n);
        Ok(())
    }

    async fn emit_pending(&mut self) -> Result<(), ConnectionError> {
        match self.pending.take() {
            Some((_, batch)) => self.emit(batch).await,
            None => Ok(()),
        }
    }

    async fn ack(&mut self, chunk: &[u8]) -> Result<(), ConnectionError> {
        self.emit_pending().await?;
        let mut reply = std::mem::take(&mut self.reply);
        reply.clear();
        write_ack(&mut reply, chunk);
        let r = self.write(&reply).await;
        self.reply = reply;
        r?;
        inc(&self.ctx.metrics.acks_sent, 1);
        Ok(())
    }

    /// The tag events of a frame get (`tag`, `add_tag_prefix`).
    fn routed_tag(&self, sent: &Arc<str>) -> Arc<str> {
        let cfg = &self.ctx.cfg;
        match (&cfg.tag, &cfg.add_tag_prefix) {
            (Some(t), Some(p)) => format!("{p}.{t}").into(),
            (Some(t), None) => t.as_str().into(),
            (None, Some(p)) => format!("{p}.{sent}").into(),
            (None, None) => sent.clone(),
        }
    }

    /// Adds `source_hostname_key` / `source_address_key` to each record.
    async fn add_source_keys(&mut self, events: &mut [crate::event::Event]) {
        let cfg = &self.ctx.cfg;
        if cfg.source_hostname_key.is_none() && cfg.source_address_key.is_none() {
            return;
        }
        let address = self.peer_address();
        if cfg.source_hostname_key.is_some() && self.hostname.is_none() {
            let name = match (cfg.resolve_hostname, self.peer) {
                (true, Some(p)) => self.ctx.hostnames.resolve(p.ip()).await,
                _ => address.clone(),
            };
            self.hostname = Some(name);
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(2);
        if let (Some(k), Some(h)) = (&cfg.source_hostname_key, &self.hostname) {
            pairs.push((k, h));
        }
        if let Some(k) = &cfg.source_address_key {
            pairs.push((k, &address));
        }
        for e in events.iter_mut() {
            if let Some(r) = append_str_pair(&e.record, &pairs) {
                e.record = r;
            }
        }
    }

    /// Adds `events` of a frame tagged `sent` to the pending batch (see the module docs).
    async fn queue(
        &mut self,
        sent: Arc<str>,
        mut events: Vec<crate::event::Event>,
    ) -> Result<(), ConnectionError> {
        if events.is_empty() {
            return Ok(());
        }
        self.add_source_keys(&mut events).await;
        // Consecutive frames with the same tag (the decoder hands out one shared `Arc` per
        // repeated tag) join one batch: a Docker client sends one Message frame per line, and
        // one pipeline pass per line would cost more than decoding it.
        if let Some((src, p)) = &mut self.pending {
            if Arc::ptr_eq(src, &sent) && p.events.len() < COALESCE_EVENTS {
                // A second frame joins: room for the next ones too (a Docker client sends
                // one event per frame).
                if p.events.capacity() - p.events.len() < events.len() {
                    p.events.reserve(events.len().max(64));
                }
                p.events.append(&mut events);
                return Ok(());
            }
        }
        self.emit_pending().await?;
        let tag = self.routed_tag(&sent);
        self.pending = Some((sent, EventBatch { tag, events }));
        Ok(())
    }

    fn count_skipped(&self, tag: &str, skipped: usize) {
        if skipped > 0 {
            inc(&self.ctx.metrics.events_skipped, skipped as u64);
            tracing::warn!(tag = %tag, skipped, "skipped invalid events");
        }
    }

    async fn events(&mut self, ev: EventsFrame) -> Result<Next, ConnectionError> {
        self.count_skipped(&ev.tag, ev.skipped);
        self.queue(ev.tag, ev.events).await?;
        if let Some(chunk) = ev.chunk {
            self.ack(&chunk).await?;
        }
        Ok(self.after_message())
    }

    /// A `CompressedPackedForward` frame: inflated one budgeted window at a time, each
    /// window's events emitted before the next is inflated. Inflating is CPU work of a few
    /// milliseconds per window: it runs on the blocking pool, so that a flood of compressed
    /// frames does not hold up the other connections' tasks.
    async fn compressed(&mut self, cf: CompressedFrame) -> Result<Next, ConnectionError> {
        let mut inflater = Some(Inflater::new(cf.payload, &self.ctx.decode));
        let mut parser = Some(FrameParser::new(self.ctx.decode.clone()));
        self.emit_pending().await?;
        loop {
            let window = inflater.as_ref().expect("kept").window_size(STREAM_WINDOW);
            let started = Instant::now();
            let memory = match self.ctx.budget.try_reserve(window as u64) {
                Some(r) => r,
                None => {
                    inc(&self.ctx.metrics.memory_waits, 1);
                    self.slot.set_busy(true);
                    let r = tokio::select! {
                        r = self.ctx.budget.reserve(window as u64) => r,
                        _ = self.slot.evicted() => return Err(ConnectionError::Evicted),
                    };
                    self.slot.set_busy(false);
                    self.clock.credit(started.elapsed());
                    r.inspect_err(|_| inc(&self.ctx.metrics.frames_over_budget, 1))?
                }
            };
            let (mut inf, mut p) = (inflater.take().expect("kept"), parser.take().expect("kept"));
            let (inf, p, w) = tokio::task::spawn_blocking(move || {
                let w = inf.next_window(&mut p, window);
                (inf, p, w)
            })
            .await
            .map_err(|e| ConnectionError::Io(std::io::Error::other(e.to_string())))?;
            (inflater, parser) = (Some(inf), Some(p));
            let Some(w) = w? else {
                break;
            };
            self.count_skipped(&cf.tag, w.skipped);
            self.queue(cf.tag.clone(), w.events).await?;
            // The window's events are held by the pipeline now (a memory buffer counts them
            // itself), or dropped: its reservation can go.
            self.emit_pending().await?;
            drop(memory);
        }
        if let Some(chunk) = cf.chunk {
            self.ack(&chunk).await?;
        }
        Ok(self.after_message())
    }
}
