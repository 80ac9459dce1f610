//! The delivery side: flush workers take chunks from the buffer, learn the engine and its
//! version ([`super::engine`]), install the index template, send `_bulk` requests, retry what
//! may succeed later and dead-letter what never will.
//!
//! Retries: a chunk's failed items are sent again after the `<buffer>`'s retry wait
//! ([`crate::buffer::RetryPolicy`]) until they succeed, or until `retry_max_times` retries or
//! `retry_timeout` have passed (unless `retry_forever`): then they go to the dead letter with
//! the last error (its `reason` says which limit). A shutdown wakes a worker out of its backoff
//! at once.
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
use super::engine::EngineInfo;
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
    /// Other requests sent: version detection (`GET /`) and template checks/installs.
    pub other_requests: AtomicU64,
    /// Requests (of either kind) that got no response, a 429/5xx for the whole request, or a
    /// refusal for a reason of configuration (credentials, TLS).
    pub failed_requests: AtomicU64,
}

impl EsStats {
    pub fn snapshot(&self) -> [(&'static str, u64); 8] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("received", g(&self.received)),
            ("indexed", g(&self.indexed)),
            ("duplicates", g(&self.duplicates)),
            ("retried", g(&self.retried)),
            ("dead_lettered", g(&self.dead_lettered)),
            ("bulk_requests", g(&self.bulk_requests)),
            ("failed_requests", g(&self.failed_requests)),
            ("other_requests", g(&self.other_requests)),
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
    /// What `GET /` said (or what is assumed); `None` until the first request.
    engine: Mutex<Option<EngineInfo>>,
    dead_letter: Mutex<Option<std::fs::File>>,
    /// Set at shutdown: retries stop at this instant and what is left is dead-lettered.
    give_up_at: Mutex<Option<Instant>>,
    /// Rate limit of the per-event ERROR lines of rejected documents.
    rejected_log: crate::log_limit::LogLimiter,
    /// Rate limit of the ERROR lines of flushes refused for a configuration problem.
    blocked_log: LogLimiter,
    /// `true` once the start-up check ([`super::check`]) is over: the workers wait for it.
    pub checked: tokio::sync::watch::Sender<bool>,
    /// `true` once shutdown began: wakes workers sleeping in a backoff.
    shutting_down: tokio::sync::watch::Sender<bool>,
}

/// One line per rejected document with `log_es_400_reason true`, within limits.
static REJECTED_400: LogLimiter = LogLimiter::new(10, Duration::from_secs(60));
/// Without it: one line per request that had rejected documents, within limits.
static REJECTED_400_SUMMARY: LogLimiter = LogLimiter::new(3, Duration::from_secs(60));

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
            engine: Mutex::new(None),
            shutting_down: tokio::sync::watch::channel(false).0,
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

    /// From now on, retries end at `deadline`; a worker waiting for its next retry wakes up.
    pub fn give_up_at(&self, deadline: Instant) {
        *self.give_up_at.lock().unwrap() = Some(deadline);
        self.shutting_down.send_replace(true);
    }

    /// Sleeps `wait`, or less if shutdown begins meanwhile.
    async fn backoff_sleep(&self, wait: Duration) {
        let mut rx = self.shutting_down.subscribe();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = rx.wait_for(|down| *down) => {}
        }
    }

    /// The engine behind the hosts: `GET /` once (`verify_es_version_at_startup`), else
    /// `default_elasticsearch_version`. A 429/5xx or no response is an error (the chunk is
    /// retried); another refusal of `GET /` (a proxy that only allows `_bulk`) is logged and
    /// the default version is assumed.
    async fn ensure_engine(&self) -> Result<EngineInfo, Failure> {
        if let Some(e) = self.engine.lock().unwrap().clone() {
            return Ok(e);
        }
        let s = &self.settings;
        let info = if !s.detect_version {
            EngineInfo::assumed(s.default_major_version)
        } else {
            let r = self
                .aux_request(reqwest::Method::GET, "", None)
                .await
                .map_err(|e| Failure {
                    message: format!("GET / (version detection): {}", e.message),
                    problem: e.problem,
                })?;
            if let Some(p) = self.http.problem(&r) {
                return Err(Failure {
                    message: format!("GET / (version detection): {p}"),
                    problem: Some(p),
                });
            }
            match r.status {
                200..=299 => {
                    EngineInfo::from_root(&r.body, r.product.as_deref()).map_err(|message| {
                        Failure {
                            message,
                            problem: None,
                        }
                    })?
                }
                429 | 500..=599 => {
                    return Err(Failure {
                        message: format!(
                            "GET / (version detection): HTTP {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                        ),
                        problem: None,
                    })
                }
                status => {
                    tracing::warn!(output = %self.name, status, default_elasticsearch_version = s.default_major_version, "elasticsearch: GET / (version detection) was refused; assuming the default version (set verify_es_version_at_startup false to skip detection)");
                    EngineInfo::assumed(s.default_major_version)
                }
            }
        };
        Ok(self.learn_engine(info))
    }

    /// Records `info` as the engine unless one is known already (the start-up check's
    /// `GET /` answer serves as the version detection too), logs it once, and returns the
    /// engine in use.
    pub(super) fn learn_engine(&self, info: EngineInfo) -> EngineInfo {
        let mut engine = self.engine.lock().unwrap();
        if let Some(known) = engine.as_ref() {
            return known.clone();
        }
        tracing::info!(
            output = %self.name,
            engine = %info.describe(),
            cluster = info.cluster_name.as_deref().unwrap_or(""),
            hosts = ?self.http.hosts.current(),
            "elasticsearch output connected"
        );
        if info.missing_product_header() {
            tracing::warn!(output = %self.name, engine = %info.describe(), "the server reports Elasticsearch 7.14 or later but sent no X-Elastic-Product header (a proxy that strips it, or not Elasticsearch); logship goes on as if it were Elasticsearch");
        }
        *engine = Some(info.clone());
        info
    }

    /// A request other than `_bulk`, counted in `other_requests` and, when it gets no answer or
    /// a 429/5xx, in `failed_requests` (so `/healthz` sees an unreachable cluster even before
    /// the first bulk request).
    async fn aux_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(bytes::Bytes, &'static str)>,
    ) -> Result<super::bulk::Response, Failure> {
        self.stats.other_requests.fetch_add(1, Ordering::Relaxed);
        match self.http.send(method, path, body).await {
            Ok(r) => {
                // A refusal that a configuration change fixes (401, TLS, ...) fails too.
                if r.status == 429 || r.status >= 500 || self.http.problem(&r).is_some() {
                    self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r)
            }
            Err(e) => {
                self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                self.reconnect_if_configured();
                Err(Failure::from(e))
            }
        }
    }

    /// After a failed request with `reconnect_on_error`: new connections, the configured
    /// hosts and a new version detection (as the plugin drops its client and its `_es_info`).
    fn reconnect_if_configured(&self) {
        if self.settings.hosts.reconnect_on_error {
            self.http.reconnect();
            *self.engine.lock().unwrap() = None;
        }
    }

    /// Installs the template if configured and not yet known to be there.
    async fn ensure_template(&self) -> Result<(), Failure> {
        if self.template_ok.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(t) = &self.settings.template else {
            return Ok(());
        };
        let engine = self.ensure_engine().await?;
        if t.composable && !engine.has_composable_templates() {
            return Err(Failure {
                message: format!(
                    "template_file {name} is a composable template (top-level \"template\" key, PUT _index_template), which {} does not have (Elasticsearch 7.8 or later); write it as a legacy template (index_patterns, order, settings and mappings at the top level)",
                    engine.describe(),
                    name = t.name
                ),
                problem: None,
            });
        }
        let path = t.api_path();
        if !self.settings.template_overwrite {
            let r = self.aux_request(reqwest::Method::GET, &path, None).await?;
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
            .aux_request(
                reqwest::Method::PUT,
                &path,
                Some((
                    bytes::Bytes::copy_from_slice(t.body.as_bytes()),
                    "application/json",
                )),
            )
            .await?;
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
                if let Err(e) = self.ensure_engine().await {
                    last_error = e.message;
                    last_problem = e.problem;
                    retry.extend(&body.items);
                    continue;
                }
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
                        self.reconnect_if_configured();
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
                if matches!(
                    outcome,
                    BulkOutcome::RetryAll(_) | BulkOutcome::RejectAll(_)
                ) {
                    self.reconnect_if_configured();
                }
                let mut rejected_400 = 0u64;
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
                                    if err["status"] == 400 {
                                        rejected_400 += 1;
                                        if self.settings.log_es_400_reason {
                                            crate::warn_limited!(
                                                REJECTED_400,
                                                output = %self.name,
                                                tag,
                                                error_type = err["error"]["type"].as_str().unwrap_or(""),
                                                reason = err["error"]["reason"].as_str().unwrap_or(""),
                                                "elasticsearch rejected a document (400)"
                                            );
                                        }
                                    }
                                    self.dead_letter(tag, ev, &err);
                                }
                            }
                        }
                    }
                }
                if rejected_400 > 0
                    && !self.settings.log_es_400_reason
                    && self.settings.dead_letter_path.is_some()
                {
                    crate::warn_limited!(
                        REJECTED_400_SUMMARY,
                        output = %self.name,
                        rejected = rejected_400,
                        "elasticsearch rejected documents (400: mapping or document errors); they are in the dead letter (set log_es_400_reason true to log each reason)"
                    );
                }
            }
            if retry.is_empty() {
                break;
            }
            let wait = self.settings.retry.wait(attempt);
            let shutdown_deadline = *self.give_up_at.lock().unwrap();
            // `attempt + 1` attempts have failed so far.
            let past_max_times = self.settings.retry.past_max_times(u64::from(attempt) + 1);
            let past_timeout =
                past_max_times || self.settings.retry.past_timeout(started.elapsed(), wait);
            let past_shutdown = shutdown_deadline.is_some_and(|d| Instant::now() + wait > d);
            if past_shutdown && !past_timeout && self.buffer.is_persistent() {
                tracing::info!(output = %self.name, events = retry.len(), error = %last_error, "shutdown: chunk not delivered; it stays in the file buffer for the next start");
                return false;
            }
            if past_timeout || past_shutdown {
                let why = if past_max_times {
                    "retry_max_times exceeded"
                } else if past_timeout {
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
            self.backoff_sleep(wait).await;
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
