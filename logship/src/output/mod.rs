//! Outputs: where matched events go. `stdout`, `null`, `file`, `copy`, `relabel`,
//! `elasticsearch`, `forward` — each module declares its parameters ([`OutputPlugin`], see
//! [`crate::config::registry`]) beside its code.
//!
//! An output's `emit` resolves once it **holds** the batch: for stdout and file that means
//! written through; for elasticsearch and forward, in its buffer (memory: appended; file:
//! fsynced — see `crate::buffer`).

pub mod copy;
pub mod elasticsearch;
pub mod file;
pub mod format;
pub mod forward;
pub mod metadata;
pub mod null;
pub mod relabel;
pub mod stdout;
pub mod timefmt;

use std::any::Any;
use std::sync::Arc;

use crate::event::{BoxFuture, EmitError, Event, EventBatch};
pub use format::LineFormat;

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

/// The checked config of an output plugin (a `<match>` or `<store>`): describes itself and
/// builds the running [`Output`].
pub trait OutputPlugin: std::fmt::Debug + Send + Sync + 'static {
    /// The `@type` (plugin ids and metrics use it).
    fn type_name(&self) -> &'static str;
    /// One line for `check-config`.
    fn describe(&self) -> String;
    /// Labels the output sends events to (checked to exist).
    fn labels(&self) -> Vec<&str> {
        Vec::new()
    }
    /// Builds the output (a Tokio runtime is running); the error says what is wrong.
    fn build(&self, ctx: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String>;

    /// For tests and tools that need the typed config.
    fn as_any(&self) -> &dyn Any;
}

/// What the pipeline lends an output while it is built.
pub trait OutputContext {
    /// The output's `@id`, if set (buffered outputs name their buffer and logs after it).
    fn id(&self) -> Option<&str>;
    /// Builds a nested output (a `<store>` of `copy`), counted and listed as a plugin of its
    /// own.
    fn store(
        &mut self,
        id: Option<&str>,
        plugin: &dyn OutputPlugin,
    ) -> Result<Arc<dyn Output>, String>;
    /// An output that hands each batch to `label` of this pipeline (`relabel`).
    fn label(&self, label: &str) -> Arc<dyn Output>;
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
