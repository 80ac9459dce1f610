//! `@type stdout`: Fluentd's line format (`2025-03-14 15:09:26.535897932 +0000 tag: {json}`,
//! in UTC) or pure JSON lines with `<format> @type json`.
//!
//! Formatting happens in the caller's task; the bytes of a whole batch then go to one writer
//! thread, which takes the stdout lock once per batch, writes them and flushes. The thread
//! keeps batches in order and keeps blocking writes off the async runtime. `emit` resolves once
//! the batch has been written.

use std::any::Any;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::{format, format_batch, metadata, LineFormat, Output, OutputContext, OutputPlugin};
use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::{BoxFuture, EmitError, EventBatch};

/// `@type stdout`, checked.
#[derive(Debug, Clone)]
pub struct StdoutConfig {
    pub format: LineFormat,
    /// `metadata_key`: see [`metadata::DEFAULT_LINE_METADATA_KEY`]; `None` hides metadata.
    pub metadata_key: Option<String>,
}

static BUFFER: SectionSpec = crate::buffer::config::SECTION
    .no_effect("each batch is written before it is acked; nothing is buffered");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn OutputPlugin> = PluginSpec {
    type_name: "stdout",
    summary: "Writes each event to stdout: Fluentd's `TIME TAG: JSON` line, or JSON lines with `<format> @type json`.",
    params: &[
        ParamSpec::choice("output_type", &["json"])
            .default("json")
            .doc("the record is written as JSON (the only choice)"),
        metadata::LINE_METADATA_KEY,
    ],
    sections: &[&format::SECTION, &BUFFER],
    parse,
};

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn OutputPlugin> {
    // Only `json` exists, which is what the line format writes.
    let _output_type: String = s.get("output_type");
    let format = s.child("format", |f| format::parse(f, LineFormat::Stdout));
    Arc::new(StdoutConfig {
        format: format.unwrap_or(LineFormat::Stdout),
        metadata_key: metadata::line_metadata_key(s),
    })
}

impl OutputPlugin for StdoutConfig {
    fn type_name(&self) -> &'static str {
        "stdout"
    }
    fn describe(&self) -> String {
        match self.format {
            LineFormat::Json => "stdout (json)".into(),
            _ => "stdout (fluentd line format)".into(),
        }
    }
    fn build(&self, _: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String> {
        Ok(Arc::new(StdoutOutput::new(self)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

type Job = (Vec<u8>, oneshot::Sender<std::io::Result<()>>);

/// The stdout output (or any writer, for tests).
pub struct StdoutOutput {
    format: LineFormat,
    /// Where non-empty Forward v1.5 metadata is shown (`metadata_key`).
    metadata_key: Option<String>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl StdoutOutput {
    /// Writes to the process's stdout.
    pub fn new(cfg: &StdoutConfig) -> Self {
        Self::start(cfg, None)
    }

    /// Writes to `w` instead of stdout.
    pub fn with_writer(cfg: &StdoutConfig, w: Box<dyn Write + Send>) -> Self {
        Self::start(cfg, Some(w))
    }

    fn start(cfg: &StdoutConfig, w: Option<Box<dyn Write + Send>>) -> Self {
        // A few batches in flight are enough to keep the writer busy.
        let (tx, mut rx) = mpsc::channel::<Job>(16);
        let thread = std::thread::Builder::new()
            .name("logship-stdout".into())
            .spawn(move || {
                let mut w = w;
                while let Some((buf, done)) = rx.blocking_recv() {
                    let r = match w.as_mut() {
                        Some(w) => w.write_all(&buf).and_then(|()| w.flush()),
                        None => {
                            let mut lock = std::io::stdout().lock();
                            lock.write_all(&buf).and_then(|()| lock.flush())
                        }
                    };
                    let _ = done.send(r);
                }
            })
            .expect("spawn stdout writer thread");
        Self {
            format: cfg.format,
            metadata_key: cfg.metadata_key.clone(),
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }
    }
}

impl Output for StdoutOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let mut buf =
                Vec::with_capacity(batch.events.iter().map(|e| e.record.len() * 2 + 64).sum());
            format_batch(self.format, self.metadata_key.as_deref(), batch, &mut buf);
            let tx = self.tx.lock().map_err(|_| EmitError::ShuttingDown)?.clone();
            let tx = tx.ok_or(EmitError::ShuttingDown)?;
            let (done_tx, done_rx) = oneshot::channel();
            tx.send((buf, done_tx))
                .await
                .map_err(|_| EmitError::ShuttingDown)?;
            match done_rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(EmitError::Output {
                    output: "stdout".into(),
                    reason: e.to_string(),
                }),
                Err(_) => Err(EmitError::ShuttingDown),
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Dropping the sender ends the thread once queued batches are written.
            if let Ok(mut g) = self.tx.lock() {
                g.take();
            }
            let handle = self.thread.lock().ok().and_then(|mut g| g.take());
            if let Some(h) = handle {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
        })
    }
}
