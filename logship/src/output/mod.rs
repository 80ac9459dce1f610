//! Outputs: where matched events go. `stdout`, `null`, `file`, `copy`, `elasticsearch`, `forward` (and
//! `relabel`, which the router handles).
//!
//! An output's `emit` resolves once it **holds** the batch: for stdout and file that means
//! written through; for elasticsearch, in its buffer (memory: appended; file: fsynced — see
//! `crate::buffer`).

pub mod elasticsearch;
pub mod file;
pub mod forward;
pub mod metadata;
pub mod stdout;
pub mod timefmt;

use std::sync::Arc;

use crate::config::LineFormat;
use crate::event::{BoxFuture, EmitError, Event, EventBatch};

/// An output plugin.
pub trait Output: Send + Sync + 'static {
    /// Takes `batch`; resolves once the output holds the events.
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>>;
    /// Flushes whatever is pending; called once at shutdown.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// The output's own counters (retries, dead letters, buffer), read by the monitor at
    /// scrape time. Outputs without any keep the default (nothing to report).
    fn stats(&self) -> crate::metrics::OutputStats {
        crate::metrics::OutputStats::default()
    }
}

/// Drops everything (`@type null`).
pub struct NullOutput;

impl Output for NullOutput {
    fn emit<'a>(&'a self, _batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Hands every batch to each store in turn (`@type copy`); fails if any store fails.
pub struct CopyOutput {
    pub stores: Vec<Arc<dyn Output>>,
}

impl Output for CopyOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let mut first_err = None;
            for s in &self.stores {
                if let Err(e) = s.emit(batch).await {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for s in &self.stores {
                s.shutdown().await;
            }
        })
    }
}

/// Appends one formatted line per event of `batch` to `out`. Records that are not valid
/// msgpack are written as `{"$invalid_record":"<base64>"}` rather than dropped. Non-empty
/// Forward v1.5 metadata is shown under `metadata_key` (see [`metadata`]).
pub fn format_batch(
    format: LineFormat,
    metadata_key: Option<&str>,
    batch: &EventBatch,
    out: &mut Vec<u8>,
) {
    for ev in &batch.events {
        format_event(format, metadata_key, &batch.tag, ev, out);
    }
}

/// Appends one formatted line for `ev`.
pub fn format_event(
    format: LineFormat,
    metadata_key: Option<&str>,
    tag: &str,
    ev: &Event,
    out: &mut Vec<u8>,
) {
    match format {
        LineFormat::Stdout => {
            timefmt::write_stdout_time(out, ev.time);
            out.push(b' ');
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(b": ");
        }
        LineFormat::OutFile => {
            timefmt::write_iso_time(out, ev.time);
            out.push(b'\t');
            out.extend_from_slice(tag.as_bytes());
            out.push(b'\t');
        }
        LineFormat::Json => {}
    }
    let mark = out.len();
    let written = crate::msgpack_json::write_json(&ev.record, out).and_then(|_| {
        match (metadata_key, metadata::shown(ev)) {
            (Some(key), Some(m)) => metadata::append_member(out, &ev.record, key, m),
            _ => Ok(()),
        }
    });
    if written.is_err() {
        out.truncate(mark);
        use base64::Engine as _;
        out.extend_from_slice(b"{\"$invalid_record\":\"");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(&ev.record)
                .as_bytes(),
        );
        out.extend_from_slice(b"\"}");
    }
    out.push(b'\n');
}
