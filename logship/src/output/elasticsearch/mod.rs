//! `@type elasticsearch`: a buffered (memory or file) output that writes events to Elasticsearch (or
//! OpenSearch) with `_bulk`.
//!
//! - [`config`]: the declared parameters, read into [`ElasticsearchConfig`], then checked into
//!   [`config::EsSettings`] (URLs, credentials, TLS, index naming);
//! - [`auth`]: basic auth and API keys; [`tls`]: CA, verification, client certificates,
//!   versions; [`diagnose`]: TLS and authentication failures told as cause and fix;
//! - [`encoder`]: events → NDJSON bulk bodies straight from msgpack;
//! - [`doc_id`]: the deterministic `_id` (xxh3-128 of tag, time and canonical record);
//! - [`bulk`]: HTTP (round robin + failover) and per-item response classification;
//! - [`check`]: the start-up check (`GET /` on every host);
//! - [`service`]: flush workers, retries with backoff, template install, dead letter.
//!
//! `emit` resolves once the batch is in the buffer (memory: appended; file: written and
//! fsynced) — that is when the Forward input acks.
//! See `docs/elasticsearch.md`.

pub mod auth;
pub mod bulk;
pub mod check;
pub mod config;
pub mod diagnose;
pub mod doc_id;
pub mod doc_time;
pub mod encoder;
pub mod engine;
pub mod hosts;
pub mod service;
pub mod tls;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::buffer::Buffer;
use crate::event::{BoxFuture, EmitError, EventBatch};
use crate::output::Output;

pub use config::{ElasticsearchConfig, EsSettings};
pub use service::{EsStats, Service};

/// How long shutdown keeps retrying what is still buffered before dead-lettering it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The output.
pub struct ElasticsearchOutput {
    service: Arc<Service>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl ElasticsearchOutput {
    /// Checks `cfg`, reads the template and starts the flush workers (needs a Tokio runtime).
    pub fn new(cfg: &ElasticsearchConfig, id: Option<&str>) -> Result<Self, String> {
        let settings = EsSettings::from_config(cfg)?;
        let name = id.unwrap_or("elasticsearch").to_string();
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| "the elasticsearch output needs a Tokio runtime".to_string())?;
        let buffer = Arc::new(
            Buffer::with_settings(&name, settings.buffer.clone()).map_err(|e| e.to_string())?,
        );
        let threads = settings.flush_thread_count;
        let service = Arc::new(Service::new(name, settings, buffer)?);
        let workers = (0..threads)
            .map(|_| rt.spawn(service.clone().worker()))
            .collect();
        rt.spawn(check::startup(service.clone()));
        Ok(Self {
            service,
            workers: Mutex::new(workers),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &EsStats {
        &self.service.stats
    }
}

impl Output for ElasticsearchOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let n = batch.len() as u64;
            self.service.buffer.push(batch.clone()).await?;
            self.service.stats.received.fetch_add(n, Ordering::Relaxed);
            Ok(())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let grace = self.service.buffer.shutdown_grace(SHUTDOWN_GRACE);
            self.service.give_up_at(Instant::now() + grace);
            self.service.buffer.close();
            let workers = std::mem::take(&mut *self.workers.lock().unwrap());
            for w in workers {
                let _ = w.await;
            }
            self.service.buffer.sync().await;
            let s = self.service.stats.snapshot();
            tracing::info!(
                output = %self.service.name,
                received = s[0].1, indexed = s[1].1, duplicates = s[2].1, retried = s[3].1,
                dead_lettered = s[4].1, bulk_requests = s[5].1, failed_requests = s[6].1,
                other_requests = s[7].1,
                "elasticsearch output stopped"
            );
        })
    }

    fn stats(&self) -> crate::metrics::OutputStats {
        let st = &self.service.stats;
        let b = &self.service.buffer;
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        crate::metrics::OutputStats {
            delivered: Some(g(&st.indexed) + g(&st.duplicates)),
            retries: Some(g(&st.retried)),
            dead_lettered: Some(g(&st.dead_lettered)),
            requests: Some(g(&st.bulk_requests) + g(&st.other_requests)),
            failed_requests: Some(g(&st.failed_requests)),
            buffer: Some(crate::metrics::BufferGauges::of(b)),
        }
    }
}
