//! The router: Fluentd's event routing over the checked [`Config`].
//!
//! For a batch of tag T entering a label (the root, or `<label @X>` for sources with
//! `@label @X`), the directives of that label are scanned top-down: every `<filter>` whose
//! pattern matches T is collected, until the first `<match>` whose pattern matches T — that
//! match's output gets the batch after those filters ran, in config order. Filters below the
//! first matching `<match>` never apply (as in Fluentd). No matching `<match>`: the batch is
//! dropped with a WARN (once per tag). The route of each (label, tag) is computed once and
//! cached. Records stay in wire form; only filters that need fields decode them.
//!
//! [`Router`] implements [`EventSink`]: `emit` resolves once the matched output holds the batch.
//!
//! The router names no plugin: each filter and output config builds itself
//! ([`crate::filter::FilterPlugin`], [`crate::output::OutputPlugin`]); the router lends outputs
//! what only it has — nested outputs for `copy`'s stores, and sinks into labels for `relabel`.
//!
//! Every filter and output is wrapped with counters ([`crate::metrics::plugin`]) under its
//! plugin id; [`Router::plugins`] and [`Router::unmatched_events`] are what the monitor reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::pattern::TagPattern;
use crate::config::{Config, ConfigError, Directive};
use crate::event::{BoxFuture, EmitError, EventBatch, EventSink};
use crate::filter::Filter;
use crate::metrics::plugin::{
    Category, CountedFilter, CountedOutput, PluginCounters, PluginEntry, PluginIds,
};
use crate::output::{Output, OutputContext, OutputPlugin};

enum Step {
    Filter {
        pattern: TagPattern,
        filter: Arc<dyn Filter>,
    },
    Match {
        pattern: TagPattern,
        output: Arc<dyn Output>,
    },
}

struct Route {
    /// (step index, filter) in order.
    filters: Vec<(usize, Arc<dyn Filter>)>,
    output: Arc<dyn Output>,
}

/// Cached routes per (label, tag). Cleared when it grows past this many entries.
const MAX_CACHED_ROUTES: usize = 65_536;

/// Routes by label, then tag: looked up with the borrowed label and tag (no allocation per
/// batch; a Docker client's one-line frames make one batch each).
type RouteCache = Mutex<HashMap<String, HashMap<Arc<str>, Option<Arc<Route>>>>>;

pub struct Router {
    labels: HashMap<String, Vec<Step>>,
    cache: RouteCache,
    outputs: Vec<Arc<dyn Output>>,
    shutting_down: AtomicBool,
    plugins: Vec<PluginEntry>,
    unmatched: AtomicU64,
}

/// Replaces the output a `<match>`/`<store>` would build (tests capture events with it):
/// `Some(output)` is used instead, `None` lets the plugin build itself.
pub type OutputOverride<'a> =
    &'a mut dyn FnMut(&dyn OutputPlugin, Option<&str>) -> Option<Arc<dyn Output>>;

/// Sends batches into one label of a router (the sink for a source with `@label`).
pub struct LabelSink {
    pub router: Arc<Router>,
    pub label: String,
}

impl EventSink for LabelSink {
    fn emit(&self, batch: EventBatch) -> BoxFuture<'_, Result<(), EmitError>> {
        self.router.emit_to(&self.label, batch)
    }
}

/// An output that hands each batch to a label of the router (what `relabel` builds).
struct LabelOutput {
    label: String,
    router: Weak<Router>,
}

impl Output for LabelOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let r = self.router.upgrade().ok_or(EmitError::ShuttingDown)?;
            r.emit_to(&self.label, batch.clone()).await
        })
    }
}

/// The label Fluentd sends error events to (a filter's unparsable records).
pub const ERROR_LABEL: &str = "@ERROR";

impl Router {
    /// Builds the router for `cfg` with the real outputs.
    pub fn build(cfg: &Config) -> Result<Arc<Router>, Vec<ConfigError>> {
        Self::build_with(cfg, &mut |_, _| None)
    }

    /// Builds the router; `replace` may substitute any output (copy and relabel included).
    pub fn build_with(
        cfg: &Config,
        replace: OutputOverride<'_>,
    ) -> Result<Arc<Router>, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut outputs: Vec<Arc<dyn Output>> = Vec::new();
        let mut plugins = Vec::new();
        let mut ids = PluginIds::default();
        let has_error_label = cfg.labels.contains_key(ERROR_LABEL);
        let router = Arc::new_cyclic(|weak: &Weak<Router>| {
            let mut labels = HashMap::new();
            let all = std::iter::once((String::new(), &cfg.root))
                .chain(cfg.labels.iter().map(|(n, l)| (n.clone(), l)));
            for (name, label) in all {
                let mut steps = Vec::new();
                for d in &label.directives {
                    match d {
                        Directive::Filter(f) => {
                            let type_name = f.plugin.type_name();
                            let counters = Arc::new(PluginCounters::default());
                            let filter: Arc<dyn Filter> = Arc::new(CountedFilter {
                                inner: f.plugin.build_with_error_label(has_error_label),
                                counters: counters.clone(),
                            });
                            plugins.push(PluginEntry {
                                id: ids.id(f.id.as_deref(), Category::Filter, type_name),
                                type_name,
                                category: Category::Filter,
                                counters,
                                output: None,
                                filter: Some(filter.clone()),
                            });
                            steps.push(Step::Filter {
                                pattern: f.pattern.clone(),
                                filter,
                            })
                        }
                        Directive::Match(m) => {
                            let mut builder = Builder {
                                weak,
                                ids: &mut ids,
                                plugins: &mut plugins,
                                replace: &mut *replace,
                                id: None,
                            };
                            match builder.output(m.id.as_deref(), m.plugin.as_ref()) {
                                Ok(o) => {
                                    outputs.push(o.clone());
                                    steps.push(Step::Match {
                                        pattern: m.pattern.clone(),
                                        output: o,
                                    });
                                }
                                Err(e) => errors.push(ConfigError::at(&m.loc, e)),
                            }
                        }
                    }
                }
                labels.insert(name, steps);
            }
            Router {
                labels,
                cache: Mutex::new(HashMap::new()),
                outputs,
                shutting_down: AtomicBool::new(false),
                plugins: std::mem::take(&mut plugins),
                unmatched: AtomicU64::new(0),
            }
        });
        if errors.is_empty() {
            Ok(router)
        } else {
            Err(errors)
        }
    }

    /// Every filter and output (copy stores included), in config order, with its counters.
    pub fn plugins(&self) -> &[PluginEntry] {
        &self.plugins
    }

    /// Events dropped because no `<match>` matched their tag.
    pub fn unmatched_events(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    fn route(&self, label: &str, tag: &Arc<str>) -> Option<Arc<Route>> {
        if let Ok(c) = self.cache.lock() {
            if let Some(r) = c.get(label).and_then(|by_tag| by_tag.get(&**tag)) {
                return r.clone();
            }
        }
        let steps = self.labels.get(label)?;
        let mut filters = Vec::new();
        let mut found = None;
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Filter { pattern, filter } if pattern.matches(tag) => {
                    filters.push((i, filter.clone()))
                }
                Step::Match { pattern, output } if pattern.matches(tag) => {
                    found = Some(Arc::new(Route {
                        filters,
                        output: output.clone(),
                    }));
                    break;
                }
                _ => {}
            }
        }
        if found.is_none() {
            tracing::warn!(tag = %tag, label = if label.is_empty() { "(root)" } else { label }, "no <match> pattern matched the tag; events dropped");
        }
        if let Ok(mut c) = self.cache.lock() {
            if c.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED_ROUTES {
                c.clear();
            }
            c.entry(label.to_string())
                .or_default()
                .insert(tag.clone(), found.clone());
        }
        found
    }

    /// Routes `batch` into `label` (`""` = the root).
    pub fn emit_to<'a>(
        &'a self,
        label: &'a str,
        batch: EventBatch,
    ) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            if self.shutting_down.load(Ordering::Acquire) {
                return Err(EmitError::ShuttingDown);
            }
            self.deliver(label, batch, None).await
        })
    }

    /// Runs the route's filters (only those after step `after`, when given) and the output.
    async fn deliver(
        &self,
        label: &str,
        batch: EventBatch,
        after: Option<usize>,
    ) -> Result<(), EmitError> {
        let Some(route) = self.route(label, &batch.tag) else {
            self.unmatched
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            return Ok(());
        };
        let EventBatch { tag, mut events } = batch;
        let mut errors = Vec::new();
        for (i, f) in &route.filters {
            if after.is_some_and(|a| *i <= a) {
                continue;
            }
            events = f.filter_with_errors(&tag, events, &mut errors);
            if events.is_empty() {
                break;
            }
        }
        if !errors.is_empty() {
            // Error events (only filters built knowing that this label exists make them).
            let batch = EventBatch {
                tag: tag.clone(),
                events: errors,
            };
            Box::pin(self.deliver(ERROR_LABEL, batch, None)).await?;
        }
        if events.is_empty() {
            return Ok(());
        }
        let out = EventBatch { tag, events };
        route.output.emit(&out).await
    }

    /// Releases events that filters held back (partial lines past their timeout; all of them
    /// when `force`) and sends them on.
    pub async fn flush_filters(&self, force: bool) {
        for (label, steps) in &self.labels {
            for (i, s) in steps.iter().enumerate() {
                let Step::Filter { filter, .. } = s else {
                    continue;
                };
                if !filter.has_timers() {
                    continue;
                }
                for b in filter.flush(force) {
                    let r = match filter.timeout_label() {
                        Some(l) => self.deliver(l, b, None).await,
                        None => self.deliver(label, b, Some(i)).await,
                    };
                    if let Err(e) = r {
                        tracing::error!(error = %e, "delivering flushed events failed");
                    }
                }
            }
        }
    }

    /// Periodically flushes filter timers until `cancel` fires.
    pub fn spawn_timers(
        self: &Arc<Self>,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => me.flush_filters(false).await,
                }
            }
        })
    }

    /// Stops taking events, flushes held-back events and every output.
    pub async fn shutdown(&self) {
        self.flush_filters(true).await;
        self.shutting_down.store(true, Ordering::Release);
        for o in &self.outputs {
            o.shutdown().await;
        }
    }
}

/// Builds outputs for the router: registers each (a copy before its stores) with its
/// counters and id, and lends itself to the plugins as their [`OutputContext`].
struct Builder<'r, 'o> {
    weak: &'r Weak<Router>,
    ids: &'r mut PluginIds,
    plugins: &'r mut Vec<PluginEntry>,
    replace: OutputOverride<'o>,
    /// The `@id` of the output being built.
    id: Option<String>,
}

impl Builder<'_, '_> {
    /// Builds `plugin` wrapped with its counters.
    fn output(
        &mut self,
        id: Option<&str>,
        plugin: &dyn OutputPlugin,
    ) -> Result<Arc<dyn Output>, String> {
        let type_name = plugin.type_name();
        let index = self.plugins.len();
        let counters = Arc::new(PluginCounters::default());
        // Registered before building, so that a copy comes before its stores.
        self.plugins.push(PluginEntry {
            id: self.ids.id(id, Category::Output, type_name),
            type_name,
            category: Category::Output,
            counters: counters.clone(),
            output: None,
            filter: None,
        });
        let inner = match (self.replace)(plugin, id) {
            Some(o) => o,
            None => {
                let outer = std::mem::replace(&mut self.id, id.map(str::to_string));
                let built = plugin.build(self);
                self.id = outer;
                built?
            }
        };
        let counted: Arc<dyn Output> = Arc::new(CountedOutput { inner, counters });
        self.plugins[index].output = Some(counted.clone());
        Ok(counted)
    }
}

impl OutputContext for Builder<'_, '_> {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    fn store(
        &mut self,
        id: Option<&str>,
        plugin: &dyn OutputPlugin,
    ) -> Result<Arc<dyn Output>, String> {
        self.output(id, plugin)
    }

    fn label(&self, label: &str) -> Arc<dyn Output> {
        Arc::new(LabelOutput {
            label: label.to_string(),
            router: self.weak.clone(),
        })
    }
}

impl EventSink for Router {
    fn emit(&self, batch: EventBatch) -> BoxFuture<'_, Result<(), EmitError>> {
        self.emit_to("", batch)
    }
}
