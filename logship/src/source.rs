//! Sources (`<source>`): the checked config of each source plugin starts the source itself.
//!
//! `logship run` starts every [`SourceRole::Monitor`] source first (so `/metrics` and
//! `/healthz` answer before any input accepts), then every [`SourceRole::Events`] source;
//! at shutdown the event sources stop first and the monitors last, after the outputs flushed.
//! The plugins: [`crate::forward::source`] (`forward`), [`crate::metrics::source`]
//! (`prometheus`, `monitor_agent`).

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Loc;
use crate::event::{BoxFuture, EventSink};
use crate::forward::ForwardMetrics;
use crate::metrics::{InputEntry, Monitor};

/// When a source starts and stops relative to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRole {
    /// Emits events into the pipeline.
    Events,
    /// Serves monitoring endpoints; emits no events.
    Monitor,
}

/// What `logship run` lends a source while it starts.
pub struct SourceContext<'a> {
    /// The plugin id (`@id`, or generated).
    pub id: &'a str,
    /// Position of the source in the config (the monitor lists inputs in this order).
    pub position: usize,
    /// Where the source was written (for errors).
    pub loc: &'a Loc,
    /// `@label`, if any.
    pub label: Option<&'a str>,
    pub monitor: &'a Arc<Monitor>,
    /// Where the source's events go (the root or its `@label`).
    pub sink: Arc<dyn EventSink>,
    /// Fires when the source must stop accepting.
    pub shutdown: CancellationToken,
    /// The connection cap of a source that accepts connections and has none configured: its
    /// share of what the process's open-file limit allows (the file descriptors are the
    /// process's, whichever source holds them; see [`crate::forward::admission`]).
    pub connection_share: usize,
}

impl SourceContext<'_> {
    /// Lists the source with the monitor — listening until `serving` ends — and spawns
    /// `serving`; an error it ends with is logged as "`what` failed".
    pub fn spawn_listed<E: std::fmt::Display>(
        &self,
        type_name: &'static str,
        forward: Option<Arc<ForwardMetrics>>,
        what: &'static str,
        serving: impl Future<Output = Result<(), E>> + Send + 'static,
    ) -> JoinHandle<()> {
        let listening = Arc::new(AtomicBool::new(true));
        self.monitor.add_input(InputEntry {
            id: self.id.to_string(),
            type_name,
            forward,
            listening: listening.clone(),
            position: self.position,
        });
        tokio::spawn(async move {
            let r = serving.await;
            listening.store(false, Ordering::Release);
            if let Err(e) = r {
                tracing::error!(error = %e, "{what} failed");
            }
        })
    }
}

/// The checked config of a source plugin.
pub trait SourcePlugin: std::fmt::Debug + Send + Sync + 'static {
    /// The `@type`.
    fn type_name(&self) -> &'static str;

    fn role(&self) -> SourceRole {
        SourceRole::Events
    }

    /// One line for `check-config` (what it listens on).
    fn describe(&self) -> String;

    /// Binds and starts serving (registering itself with `ctx.monitor`); the task ends once
    /// `ctx.shutdown` fired and the source has stopped. Errors say what could not be bound.
    fn start<'a>(&'a self, ctx: SourceContext<'a>)
        -> BoxFuture<'a, Result<JoinHandle<()>, String>>;

    /// For tests and tools that need the typed config.
    fn as_any(&self) -> &dyn Any;
}
