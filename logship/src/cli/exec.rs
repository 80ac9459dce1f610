//! `logship exec --tag TAG -- CMD ARGS…`: runs a command and ships each line it writes, as
//! Docker's fluentd log driver would: record `{container_id?, container_name: "/NAME",
//! source: "stdout"|"stderr", log: LINE}` (the line without its `\n`), tag `TAG`, time of
//! reading.
//!
//! - Lines are echoed unchanged to logship's own stdout / stderr, as they arrive.
//! - Shipping never blocks the command: lines go to a bounded in-memory queue
//!   (`--buffer-lines`, default 10000; when full the oldest lines are dropped and counted) and a
//!   background task sends them, connecting — and reconnecting with backoff — whenever the
//!   server is not up yet or goes away. A batch that failed is retried, not lost.
//! - Lines longer than 16 KiB are split into 16 KiB pieces with Docker's `partial_message`,
//!   `partial_id`, `partial_ordinal`, `partial_last` fields (join them with the concat filter).
//! - When the command exits, what is queued is flushed for at most `--flush-timeout`
//!   (default 5s); logship then exits with the command's exit code (128+N when killed by
//!   signal N). SIGTERM/SIGINT received by logship are passed on to the command.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

use crate::event::{Event, EventBatch, EventTime};
use crate::forward::client::{ClientConfig, ForwardClient};
use crate::pipeline::record;

/// Docker splits lines at this size.
pub const PARTIAL_SIZE: usize = 16 * 1024;

/// Options of `logship exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub tag: String,
    pub addr: String,
    pub shared_key: Option<String>,
    pub ack: bool,
    /// Without the leading `/`; default: the command's basename.
    pub name: Option<String>,
    pub container_id: Option<String>,
    pub buffer_lines: usize,
    pub flush_timeout: Duration,
    pub command: Vec<String>,
}

/// The bounded queue between the readers and the shipper.
struct Queue {
    events: Mutex<VecDeque<Event>>,
    cap: usize,
    dropped: AtomicU64,
    notify: Notify,
}

impl Queue {
    fn push(&self, ev: Event) {
        if let Ok(mut q) = self.events.lock() {
            if q.len() >= self.cap {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(ev);
        }
        self.notify.notify_one();
    }
    fn take(&self, max: usize) -> Vec<Event> {
        match self.events.lock() {
            Ok(mut q) => {
                let n = q.len().min(max);
                q.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        }
    }
    /// Puts a failed batch back at the front (oldest first), within the bound.
    fn requeue(&self, evs: Vec<Event>) {
        if let Ok(mut q) = self.events.lock() {
            for ev in evs.into_iter().rev() {
                if q.len() >= self.cap {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                q.push_front(ev);
            }
        }
    }
    fn is_empty(&self) -> bool {
        self.events.lock().map(|q| q.is_empty()).unwrap_or(true)
    }
}

struct RecordShape {
    container_id: Option<Vec<u8>>,
    container_name: Vec<u8>,
}

impl RecordShape {
    fn encode(&self, source: &str, log: &[u8], partial: Option<(&str, usize, bool)>) -> Bytes {
        let mut out = Vec::with_capacity(log.len() + 128);
        let n =
            3 + usize::from(self.container_id.is_some()) + if partial.is_some() { 4 } else { 0 };
        record::write_map_len(&mut out, n);
        if let Some(id) = &self.container_id {
            record::write_str(&mut out, b"container_id");
            record::write_str(&mut out, id);
        }
        record::write_str(&mut out, b"container_name");
        record::write_str(&mut out, &self.container_name);
        record::write_str(&mut out, b"source");
        record::write_str(&mut out, source.as_bytes());
        record::write_str(&mut out, b"log");
        record::write_str(&mut out, log);
        if let Some((id, ordinal, last)) = partial {
            record::write_str(&mut out, b"partial_message");
            record::write_str(&mut out, b"true");
            record::write_str(&mut out, b"partial_id");
            record::write_str(&mut out, id.as_bytes());
            record::write_str(&mut out, b"partial_ordinal");
            record::write_str(&mut out, ordinal.to_string().as_bytes());
            record::write_str(&mut out, b"partial_last");
            record::write_str(&mut out, if last { b"true" } else { b"false" });
        }
        Bytes::from(out)
    }
}

fn partial_id(seq: u64) -> String {
    let t = EventTime::now();
    format!(
        "{:016x}{:08x}{:08x}{:016x}",
        t.secs,
        t.nanos,
        std::process::id(),
        seq
    )
}

/// Reads lines from `input`, echoes each to `echo`, and queues records.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    input: R,
    mut echo: W,
    source: &'static str,
    shape: Arc<RecordShape>,
    queue: Arc<Queue>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::with_capacity(1024);
    let mut seq = 0u64;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {
                let _ = echo.write_all(&line).await;
                let _ = echo.flush().await;
                let content = line.strip_suffix(b"\n").unwrap_or(&line);
                let time = EventTime::now();
                if content.len() <= PARTIAL_SIZE {
                    queue.push(Event::new(time, shape.encode(source, content, None)));
                } else {
                    seq += 1;
                    let id = partial_id(seq);
                    let pieces: Vec<&[u8]> = content.chunks(PARTIAL_SIZE).collect();
                    let n = pieces.len();
                    for (i, p) in pieces.into_iter().enumerate() {
                        queue.push(Event::new(
                            time,
                            shape.encode(source, p, Some((&id, i + 1, i + 1 == n))),
                        ));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(source, error = %e, "reading the command's output failed");
                break;
            }
        }
    }
}

/// Sends queued events, (re)connecting with backoff, until `stop` and the queue is empty.
async fn ship(opts: ExecOptions, queue: Arc<Queue>, stop: tokio_util::sync::CancellationToken) {
    let mut client: Option<ForwardClient> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        if queue.is_empty() {
            if stop.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = queue.notify.notified() => {}
                _ = stop.cancelled() => {}
                // Re-check periodically in case a notification raced with take().
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        if client.is_none() {
            let cfg = ClientConfig {
                addr: opts.addr.clone(),
                shared_key: opts.shared_key.clone(),
                self_hostname: gethostname::gethostname().to_string_lossy().into_owned(),
                require_ack: opts.ack,
                timeout: Duration::from_secs(5),
                ..Default::default()
            };
            match ForwardClient::connect(cfg).await {
                Ok(c) => {
                    client = Some(c);
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::debug!(error = %e, addr = %opts.addr, "logship exec: server not reachable yet; lines stay queued");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let evs = queue.take(1000);
        if evs.is_empty() {
            continue;
        }
        let batch = EventBatch::new(opts.tag.as_str(), evs);
        let c = client.as_mut().expect("connected above");
        if let Err(e) = c.send_batch(&batch).await {
            tracing::debug!(error = %e, "logship exec: sending failed; will reconnect and retry");
            queue.requeue(batch.events);
            client = None;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
    if let Some(c) = client {
        let _ = c.close().await;
    }
}

/// Runs the command; returns the exit code logship should exit with.
pub async fn exec(opts: ExecOptions) -> anyhow::Result<i32> {
    let (prog, args) = opts
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given after --"))?;
    let name = opts.name.clone().unwrap_or_else(|| {
        std::path::Path::new(prog)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| prog.clone())
    });
    let shape = Arc::new(RecordShape {
        container_id: opts.container_id.as_ref().map(|s| s.as_bytes().to_vec()),
        container_name: format!("/{}", name.trim_start_matches('/')).into_bytes(),
    });
    let queue = Arc::new(Queue {
        events: Mutex::new(VecDeque::new()),
        cap: opts.buffer_lines.max(1),
        dropped: AtomicU64::new(0),
        notify: Notify::new(),
    });
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            // As a shell would: 127 when the command is not found, 126 when it can't run.
            eprintln!("logship exec: cannot run {prog:?}: {e}");
            return Ok(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let stop = tokio_util::sync::CancellationToken::new();
    let shipper = tokio::spawn(ship(opts.clone(), queue.clone(), stop.clone()));
    let r_out = tokio::spawn(pump(
        out,
        tokio::io::stdout(),
        "stdout",
        shape.clone(),
        queue.clone(),
    ));
    let r_err = tokio::spawn(pump(
        err,
        tokio::io::stderr(),
        "stderr",
        shape.clone(),
        queue.clone(),
    ));

    let pid = child.id();
    let status = loop {
        tokio::select! {
            st = child.wait() => break st?,
            () = super::run::wait_for_signal() => {
                forward_signal(pid);
            }
        }
    };
    // The pipes close when the command (and anything it left running with them) is gone;
    // don't wait forever for a grandchild that keeps them open.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = r_out.await;
        let _ = r_err.await;
    })
    .await;
    stop.cancel();
    if tokio::time::timeout(opts.flush_timeout, shipper)
        .await
        .is_err()
    {
        let left = queue.events.lock().map(|q| q.len()).unwrap_or(0);
        tracing::warn!(
            lines = left,
            "logship exec: could not deliver every line before the flush timeout"
        );
    }
    let dropped = queue.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(
            lines = dropped,
            "logship exec: lines dropped because the buffer was full"
        );
    }
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    }
}

/// Passes SIGTERM on to the command (via kill(1): this crate forbids `unsafe`).
fn forward_signal(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
}
