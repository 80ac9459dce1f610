//! The delivery side: flush workers take chunks from the buffer, install the index template,
//! send `_bulk` requests, retry what may succeed later and dead-letter what never will.
//!
//! A request refused for a reason of configuration (TLS, credentials, privileges: see
//! [`super::diagnose`]) is retried like an outage, never dead-lettered — the documents are
//! fine — and each failed flush logs the cause and the parameter that fixes it at ERROR,
//! rate-limited ([`BLOCKED_LOG_BURST`] per [`BLOCKED_LOG_INTERVAL`]).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bulk::{classify, BulkOutcome, EsHttp, ItemOutcome, TransportError};
use super::config::{EsSettings, WriteOperation};
use super::diagnose::ConfigProblem;
use super::encoder::{write_rfc3339_nanos, Encoder, ItemRef};
use crate::buffer::{Buffer, Chunk};
use crate::event::Event;
use crate::log_limit::LogLimiter;

/// Counters of an Elasticsearch output.
#[derive(Debug, Default)]
pub struct EsStats {
    /// Events accepted into the buffer.
    pub received: AtomicU64,
    /// Documents created/indexed (2xx items).
    pub indexed: AtomicU64,
    /// Items answered 409 on `create`: already there, counted as delivered.
    pub duplicates: AtomicU64,
    /// Item retries (429/5xx items, or all items of a failed request).
    pub retried: AtomicU64,
    /// Events written to the dead letter (or logged at ERROR when there is none).
    pub dead_lettered: AtomicU64,
    /// `_bulk` requests sent.
    pub bulk_requests: AtomicU64,
    /// Requests that got no response, or a 429/5xx for the whole request.
    pub failed_requests: AtomicU64,
}

impl EsStats {
    pub fn snapshot(&self) -> [(&'static str, u64); 7] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("received", g(&self.received)),
            ("indexed", g(&self.indexed)),
            ("duplicates", g(&self.duplicates)),
            ("retried", g(&self.retried)),
            ("dead_lettered", g(&self.dead_lettered)),
            ("bulk_requests", g(&self.bulk_requests)),
            ("failed_requests", g(&self.failed_requests)),
        ]
    }
}

/// Rejected events logged in full per [`REJECTED_LOG_INTERVAL`] (then one line with the count).
pub const REJECTED_LOG_BURST: u32 = 5;
pub const REJECTED_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// At most this many "delivery blocked" ERROR lines per [`BLOCKED_LOG_INTERVAL`] and output.
pub const BLOCKED_LOG_BURST: u32 = 3;
pub const BLOCKED_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Why a request (template or bulk) failed as a whole.
struct Failure {
    message: String,
    /// Set when a change of configuration fixes it.
    problem: Option<ConfigProblem>,
}

impl From<TransportError> for Failure {
    fn from(e: TransportError) -> Self {
        Self {
            message: e.message,
            problem: e.problem,
        }
    }
}

/// Shared state of the flush workers.
pub struct Service {
    pub name: String,
    pub settings: EsSettings,
    pub http: EsHttp,
    pub buffer: Arc<Buffer>,
    pub stats: EsStats,
    template_ok: AtomicBool,
    dead_letter: Mutex<Option<std::fs::File>>,
    /// Set at shutdown: retries stop at this instant and what is left is dead-lettered.
    give_up_at: Mutex<Option<Instant>>,
    /// Rate limit of the per-event ERROR lines of rejected documents.
    rejected_log: crate::log_limit::LogLimiter,
    /// Rate limit of the ERROR lines of flushes refused for a configuration problem.
    blocked_log: LogLimiter,
    /// `true` once the start-up check ([`super::check`]) is over: the workers wait for it.
    pub checked: tokio::sync::watch::Sender<bool>,
}

impl Service {
    pub fn new(name: String, settings: EsSettings, buffer: Arc<Buffer>) -> Result<Self, String> {
        let http = EsHttp::new(&settings)?;
        for w in &http.warnings {
            tracing::warn!(output = %name, "{w}");
        }
        let dead_letter = match &settings.dead_letter_path {
            Some(p) => {
                if let Some(dir) = std::path::Path::new(p).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    }
                }
                Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map_err(|e| format!("cannot open dead_letter_path {p}: {e}"))?,
                )
            }
            None => None,
        };
        Ok(Self {
            template_ok: AtomicBool::new(settings.template.is_none()),
            name,
            settings,
            http,
            buffer,
            stats: EsStats::default(),
            dead_letter: Mutex::new(dead_letter),
            give_up_at: Mutex::new(None),
            rejected_log: crate::log_limit::LogLimiter::new(
                REJECTED_LOG_BURST,
                REJECTED_LOG_INTERVAL,
            ),
            blocked_log: LogLimiter::new(BLOCKED_LOG_BURST, BLOCKED_LOG_INTERVAL),
            checked: tokio::sync::watch::Sender::new(false),
        })
    }

    /// A flush worker: delivers chunks until the buffer is closed and drained.
    pub async fn worker(self: Arc<Self>) {
        // After the start-up check: its verdict is logged first, its request sent first.
        let _ = self.checked.subscribe().wait_for(|done| *done).await;
        while let Some(chunk) = self.buffer.take().await {
            if self.deliver(&chunk).await {
                self.buffer.release(&chunk);
            }
        }
    }

    /// From now on, retries end at `deadline`.
    pub fn give_up_at(&self, deadline: Instant) {
        *self.give_up_at.lock().unwrap() = Some(deadline);
    }

    /// Installs the template if configured and not yet known to be there.
    async fn ensure_template(&self) -> Result<(), Failure> {
        if self.template_ok.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(t) = &self.settings.template else {
            return Ok(());
        };
        let path = t.api_path();
        if !self.settings.template_overwrite {
            let r = self
                .http
                .send(reqwest::Method::GET, &path, None)
                .await
                .map_err(Failure::from)?;
            if let Some(p) = self.http.problem(&r) {
                return Err(Failure {
                    message: format!("GET {path}: {p}"),
                    problem: Some(p),
                });
            }
            if r.status == 200 {
                self.template_ok.store(true, Ordering::Release);
                return Ok(());
            }
        }
        let r = self
            .http
            .send(
                reqwest::Method::PUT,
                &path,
                Some((
                    bytes::Bytes::copy_from_slice(t.body.as_bytes()),
                    "application/json",
                )),
            )
            .await
            .map_err(Failure::from)?;
        if (200..300).contains(&r.status) {
            tracing::info!(output = %self.name, template = %t.name, "index template installed");
            self.template_ok.store(true, Ordering::Release);
            Ok(())
        } else {
            let problem = self.http.problem(&r);
            Err(Failure {
                message: format!(
                    "PUT {path}: HTTP {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ),
                problem,
            })
        }
    }

    fn event(chunk: &Chunk, (b, e): ItemRef) -> (&str, &Event) {
        let batch = &chunk.batches[b];
        (&batch.tag, &batch.events[e])
    }

    /// Delivers a chunk: returns `true` once every event is indexed, a duplicate, or
    /// dead-lettered; `false` when shutdown came first and the buffer is a file buffer (the
    /// chunk stays on disk and is delivered after the next start — never dead-lettered for
    /// that reason).
    pub async fn deliver(&self, chunk: &Chunk) -> bool {
        let mut pending: Vec<ItemRef> = chunk
            .batches
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.events.len()).map(move |e| (b, e)))
            .collect();
        let started = Instant::now();
        let mut attempt = 0u32;
        let create = self.settings.write_operation == WriteOperation::Create;
        while !pending.is_empty() {
            let mut retry: Vec<ItemRef> = Vec::new();
            let mut last_error = String::new();
            let mut last_problem: Option<ConfigProblem> = None;
            // One body at a time: it is encoded, sent and dropped before the next is encoded,
            // so a worker holds its chunk plus one body (see docs/durability.md, memory).
            let mut rest = &pending[..];
            while !rest.is_empty() {
                let mut enc = Encoder::new(&self.settings);
                let mut used = 0;
                for &item in rest {
                    used += 1;
                    let (tag, ev) = Self::event(chunk, item);
                    if enc.push(item, tag, ev) {
                        break;
                    }
                }
                rest = &rest[used..];
                let (bodies, rejected) = enc.finish();
                for r in rejected {
                    let (tag, ev) = Self::event(chunk, r.item);
                    self.dead_letter(tag, ev, &serde_json::json!({"reason": r.reason}));
                }
                let Some(body) = bodies.into_iter().next() else {
                    continue;
                };
                if let Err(e) = self.ensure_template().await {
                    last_error = format!("installing the index template: {}", e.message);
                    last_problem = e.problem;
                    retry.extend(&body.items);
                    continue;
                }
                self.stats.bulk_requests.fetch_add(1, Ordering::Relaxed);
                let payload = bytes::Bytes::from(body.body);
                let outcome = match self
                    .http
                    .send(
                        reqwest::Method::POST,
                        "_bulk",
                        Some((payload, "application/x-ndjson")),
                    )
                    .await
                {
                    Err(e) => {
                        // The node may come back empty (a fresh data dir): check the
                        // template again before the next request.
                        if self.settings.template.is_some() {
                            self.template_ok.store(false, Ordering::Release);
                        }
                        last_problem = e.problem;
                        BulkOutcome::RetryAll(e.message)
                    }
                    // Refused for its credentials or TLS, not for its documents: retried,
                    // never dead-lettered.
                    Ok(r) => match self.http.problem(&r) {
                        Some(p) => {
                            let message = p.to_string();
                            last_problem = Some(p);
                            BulkOutcome::RetryAll(message)
                        }
                        None => classify(r.status, &r.body, body.items.len(), create),
                    },
                };
                match outcome {
                    BulkOutcome::RetryAll(e) => {
                        self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                        last_error = e;
                        retry.extend(&body.items);
                    }
                    BulkOutcome::RejectAll(err) => {
                        for &item in &body.items {
                            let (tag, ev) = Self::event(chunk, item);
                            self.dead_letter(tag, ev, &err);
                        }
                    }
                    BulkOutcome::Items(outcomes) => {
                        for (&item, o) in body.items.iter().zip(outcomes) {
                            match o {
                                ItemOutcome::Indexed => {
                                    self.stats.indexed.fetch_add(1, Ordering::Relaxed);
                                }
                                ItemOutcome::Duplicate => {
                                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                                }
                                ItemOutcome::Retry(e) => {
                                    last_error = e;
                                    retry.push(item);
                                }
                                ItemOutcome::Reject(err) => {
                                    let (tag, ev) = Self::event(chunk, item);
                                    self.dead_letter(tag, ev, &err);
                                }
                            }
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            let wait = self.settings.retry.wait(attempt);
            let shutdown_deadline = *self.give_up_at.lock().unwrap();
            let past_timeout = self.settings.retry.past_timeout(started.elapsed(), wait);
            let past_shutdown = shutdown_deadline.is_some_and(|d| Instant::now() + wait > d);
            if past_shutdown && !past_timeout && self.buffer.is_persistent() {
                tracing::info!(output = %self.name, events = retry.len(), error = %last_error, "shutdown: chunk not delivered; it stays in the file buffer for the next start");
                return false;
            }
            if past_timeout || past_shutdown {
                let why = if past_timeout {
                    "retry_timeout exceeded"
                } else {
                    "still failing at shutdown"
                };
                tracing::error!(output = %self.name, events = retry.len(), error = %last_error, "giving up: {why}");
                for item in retry {
                    let (tag, ev) = Self::event(chunk, item);
                    self.dead_letter(
                        tag,
                        ev,
                        &serde_json::json!({"reason": why, "last_error": last_error}),
                    );
                }
                break;
            }
            self.stats
                .retried
                .fetch_add(retry.len() as u64, Ordering::Relaxed);
            match &last_problem {
                Some(p) => crate::error_limited!(
                    self.blocked_log,
                    output = %self.name,
                    events = retry.len(),
                    attempt = attempt + 1,
                    retry_in_ms = wait.as_millis() as u64,
                    cause = %p.cause,
                    fix = %p.fix,
                    "Elasticsearch refuses logship: the events stay buffered and are retried until the configuration is fixed"
                ),
                None => {
                    tracing::warn!(output = %self.name, events = retry.len(), attempt = attempt + 1, retry_in_ms = wait.as_millis() as u64, error = %last_error, "bulk delivery failed; will retry")
                }
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
            pending = retry;
        }
        true
    }

    /// Writes `{tag,time,record,error}` as a JSON line to the dead letter, or logs it at ERROR
    /// when there is no dead letter. Never silent.
    pub fn dead_letter(&self, tag: &str, ev: &Event, error: &serde_json::Value) {
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let mut line = Vec::with_capacity(ev.record.len() + 128);
        line.extend_from_slice(b"{\"tag\":");
        crate::msgpack_json::write_json_str(&mut line, tag);
        line.extend_from_slice(b",\"time\":\"");
        write_rfc3339_nanos(&mut line, ev.time);
        line.extend_from_slice(b"\",\"record\":");
        let mark = line.len();
        if crate::msgpack_json::write_json(&ev.record, &mut line).is_err() {
            use base64::Engine as _;
            line.truncate(mark);
            crate::msgpack_json::write_json_str(
                &mut line,
                &base64::engine::general_purpose::STANDARD.encode(&ev.record),
            );
        }
        line.extend_from_slice(b",\"error\":");
        line.extend_from_slice(error.to_string().as_bytes());
        line.extend_from_slice(b"}\n");
        // One line per event would let a producer of bad documents flood logship's own log:
        // the first few per interval are logged with the event, then one line with the count
        // of the others (the dead_lettered counter has every one).
        let mut f = self.dead_letter.lock().unwrap();
        match f.as_mut() {
            Some(file) => {
                if let Err(e) = file.write_all(&line) {
                    crate::error_limited!(self.rejected_log, output = %self.name, error = %e, event = %String::from_utf8_lossy(&line).trim_end(), "cannot write the dead letter; event rejected by Elasticsearch");
                }
            }
            None => {
                crate::error_limited!(self.rejected_log, output = %self.name, event = %String::from_utf8_lossy(&line).trim_end(), "event rejected by Elasticsearch (no dead_letter_path configured)");
            }
        }
    }
}
