//! Monitoring: `GET /metrics` (Prometheus text format 0.0.4), `GET /healthz` and Fluentd's
//! `GET /api/plugins.json`, served by `<source> @type prometheus` or `@type monitor_agent`.
//!
//! Nothing is counted twice: components keep their own atomic counters (the Forward server's
//! [`crate::forward::ForwardMetrics`], the router's per-plugin [`plugin::PluginCounters`], an
//! output's [`crate::output::Output::stats`]) and the [`Monitor`] only **reads** them when a
//! scrape arrives. A scrape therefore costs a few hundred atomic loads and some formatting; the
//! event path pays one relaxed atomic add per batch and plugin.
//!
//! - [`plugin`]: per-plugin counters, generated plugin ids, what outputs report;
//! - [`registry`]: the exposition (via the `prometheus-client` crate) and `plugins.json`;
//! - [`health`]: the `/healthz` rules;
//! - [`process`]: `process_*` metrics from `/proc`;
//! - [`server`]: the HTTP server (axum);
//! - [`source`]: the `prometheus` and `monitor_agent` sources (their parameters, start).
//!
//! See `docs/metrics.md` for every metric.

pub mod health;
pub mod plugin;
pub mod process;
pub mod registry;
pub mod server;
pub mod source;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use plugin::{BufferGauges, OutputStats};

use crate::forward::ForwardMetrics;
use crate::pipeline::Router;

/// A source, as the monitor lists it.
#[derive(Clone)]
pub struct InputEntry {
    /// `@id` or generated (see [`plugin`]).
    pub id: String,
    /// `forward`, `prometheus` or `monitor_agent`.
    pub type_name: &'static str,
    /// The Forward server's counters (forward sources only).
    pub forward: Option<Arc<ForwardMetrics>>,
    /// True while the source's socket is bound and served.
    pub listening: Arc<AtomicBool>,
    /// Position of the source in the config (inputs are listed in this order).
    pub position: usize,
}

/// Everything a scrape reads: the sources, the router (filters, outputs), health state.
pub struct Monitor {
    router: Arc<Router>,
    inputs: Mutex<Vec<InputEntry>>,
    health: health::HealthTracker,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("inputs", &self.inputs().len())
            .field("plugins", &self.router.plugins().len())
            .finish()
    }
}

impl Monitor {
    pub fn new(router: Arc<Router>) -> Arc<Self> {
        Arc::new(Self {
            router,
            inputs: Mutex::new(Vec::new()),
            health: health::HealthTracker::default(),
        })
    }

    /// Adds a source (listed by [`InputEntry::position`]).
    pub fn add_input(&self, e: InputEntry) {
        let mut v = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        v.push(e);
        v.sort_by_key(|e| e.position);
    }

    /// The sources added so far.
    pub fn inputs(&self) -> Vec<InputEntry> {
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Feeds every output's request counters to the health tracker.
    pub fn sample_health(&self) {
        let now = Instant::now();
        for p in self.router.plugins() {
            if let Some(o) = &p.output {
                self.health.observe(&p.id, &o.stats(), now);
            }
        }
    }

    /// Samples the outputs once a second (for the "failing for N seconds" rule) until `cancel`.
    pub fn spawn_sampler(
        self: &Arc<Self>,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => me.sample_health(),
                }
            }
        })
    }

    /// `Ok` when healthy, else the reasons (see [`health`]).
    pub fn health(&self, failing_after: Duration) -> Result<(), Vec<String>> {
        self.sample_health();
        let now = Instant::now();
        let mut reasons = Vec::new();
        for i in self.inputs() {
            if !i.listening.load(Ordering::Acquire) {
                reasons.push(format!("input {} ({}) is not listening", i.id, i.type_name));
            }
        }
        for p in self.router.plugins() {
            if let Some(o) = &p.output {
                if let Some(r) = self
                    .health
                    .output_problem(&p.id, &o.stats(), now, failing_after)
                {
                    reasons.push(r);
                }
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}
