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
//! Every filter and output is wrapped with counters ([`crate::metrics::plugin`]) under its
//! plugin id; [`Router::plugins`] and [`Router::unmatched_events`] are what the monitor reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::pattern::TagPattern;
use crate::config::{Config, ConfigError, Directive, FilterConfig, OutputConfig};
use crate::event::{BoxFuture, EmitError, EventBatch, EventSink};
use crate::filter::{
    concat::ConcatFilter, parser::ParserFilter, record_transformer::RecordTransformer, Filter,
};
use crate::metrics::plugin::{
    filter_type_name, Category, CountedFilter, CountedOutput, PluginCounters, PluginEntry,
    PluginIds,
};
use crate::output::{file::FileOutput, stdout::StdoutOutput, CopyOutput, NullOutput, Output};

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

type RouteCache = Mutex<HashMap<(String, Arc<str>), Option<Arc<Route>>>>;

pub struct Router {
    labels: HashMap<String, Vec<Step>>,
    cache: RouteCache,
    outputs: Vec<Arc<dyn Output>>,
    shutting_down: AtomicBool,
    plugins: Vec<PluginEntry>,
    unmatched: AtomicU64,
}

/// Builds an output for a `<match>`/`<store>` (the default: [`build_output`]); tests pass their own.
pub type OutputFactory<'a> =
    &'a mut dyn FnMut(&OutputConfig, Option<&str>) -> Result<Arc<dyn Output>, String>;

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

/// `@type relabel`: hands the batch to another label.
struct RelabelOutput {
    label: String,
    router: Weak<Router>,
}

impl Output for RelabelOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let r = self.router.upgrade().ok_or(EmitError::ShuttingDown)?;
            r.emit_to(&self.label, batch.clone()).await
        })
    }
}

/// Builds the output for `cfg` (stdout, null, file, copy). Relabel is built by the router.
pub fn build_output(cfg: &OutputConfig, id: Option<&str>) -> Result<Arc<dyn Output>, String> {
    Ok(match cfg {
        OutputConfig::Stdout(s) => Arc::new(StdoutOutput::new(s)),
        OutputConfig::Null => Arc::new(NullOutput),
        OutputConfig::File(f) => Arc::new(FileOutput::new(f)),
        OutputConfig::Elasticsearch(e) => Arc::new(
            crate::output::elasticsearch::ElasticsearchOutput::new(e, id)
                .map_err(|e| format!("@type elasticsearch: {e}"))?,
        ),
        OutputConfig::Forward(f) => Arc::new(
            crate::output::forward::ForwardOutput::new(f, id)
                .map_err(|e| format!("@type forward: {e}"))?,
        ),
        other => {
            return Err(format!(
                "output @type {} is not implemented yet (the configuration is valid)",
                other.type_name()
            ))
        }
    })
}

fn build_filter(cfg: &FilterConfig) -> Arc<dyn Filter> {
    match cfg {
        FilterConfig::Parser(p) => Arc::new(ParserFilter::new(p.clone())),
        FilterConfig::RecordTransformer(r) => Arc::new(RecordTransformer::new(r)),
        FilterConfig::Concat(c) => Arc::new(ConcatFilter::new(c.clone())),
    }
}

impl Router {
    /// Builds the router for `cfg` with the real outputs.
    pub fn build(cfg: &Config) -> Result<Arc<Router>, Vec<ConfigError>> {
        Self::build_with(cfg, &mut build_output)
    }

    /// Builds the router, creating outputs with `factory` (copy and relabel are handled here).
    pub fn build_with(
        cfg: &Config,
        factory: OutputFactory<'_>,
    ) -> Result<Arc<Router>, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut outputs: Vec<Arc<dyn Output>> = Vec::new();
        let mut plugins = Vec::new();
        let mut ids = PluginIds::default();
        let router = Arc::new_cyclic(|weak: &Weak<Router>| {
            let mut labels = HashMap::new();
            let all = std::iter::once((String::new(), &cfg.root))
                .chain(cfg.labels.iter().map(|(n, l)| (n.clone(), l)));
            for (name, label) in all {
                let mut steps = Vec::new();
                for d in &label.directives {
                    match d {
                        Directive::Filter(f) => {
                            let type_name = filter_type_name(&f.plugin);
                            let counters = Arc::new(PluginCounters::default());
                            plugins.push(PluginEntry {
                                id: ids.id(f.id.as_deref(), Category::Filter, type_name),
                                type_name,
                                category: Category::Filter,
                                counters: counters.clone(),
                                output: None,
                            });
                            steps.push(Step::Filter {
                                pattern: f.pattern.clone(),
                                filter: Arc::new(CountedFilter {
                                    inner: build_filter(&f.plugin),
                                    counters,
                                }),
                            })
                        }
                        Directive::Match(m) => {
                            let mut reg = Registration {
                                ids: &mut ids,
                                plugins: &mut plugins,
                            };
                            match make_output(&m.plugin, m.id.as_deref(), weak, factory, &mut reg) {
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
        let key = (label.to_string(), tag.clone());
        if let Ok(c) = self.cache.lock() {
            if let Some(r) = c.get(&key) {
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
            if c.len() >= MAX_CACHED_ROUTES {
                c.clear();
            }
            c.insert(key, found.clone());
        }
        found
    }

    /// Routes `batch` into `label` (`""` = the root).
    pub fn emit_to(&self, label: &str, batch: EventBatch) -> BoxFuture<'_, Result<(), EmitError>> {
        let label = label.to_string();
        Box::pin(async move {
            if self.shutting_down.load(Ordering::Acquire) {
                return Err(EmitError::ShuttingDown);
            }
            self.deliver(&label, batch, None).await
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
        for (i, f) in &route.filters {
            if after.is_some_and(|a| *i <= a) {
                continue;
            }
            events = f.filter(&tag, events);
            if events.is_empty() {
                return Ok(());
            }
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

/// Where [`make_output`] records the plugins it builds.
struct Registration<'r> {
    ids: &'r mut PluginIds,
    plugins: &'r mut Vec<PluginEntry>,
}

/// Builds the output for `cfg` wrapped with its counters (a copy's stores each get their own).
fn make_output(
    cfg: &OutputConfig,
    id: Option<&str>,
    weak: &Weak<Router>,
    factory: OutputFactory<'_>,
    reg: &mut Registration<'_>,
) -> Result<Arc<dyn Output>, String> {
    let type_name = cfg.type_name();
    let index = reg.plugins.len();
    let counters = Arc::new(PluginCounters::default());
    // Registered before the stores, so that a copy comes before its stores.
    reg.plugins.push(PluginEntry {
        id: reg.ids.id(id, Category::Output, type_name),
        type_name,
        category: Category::Output,
        counters: counters.clone(),
        output: None,
    });
    let inner: Arc<dyn Output> = match cfg {
        OutputConfig::Relabel(l) => Arc::new(RelabelOutput {
            label: l.clone(),
            router: weak.clone(),
        }),
        OutputConfig::Copy(stores) => {
            let mut v = Vec::new();
            for (sid, s) in stores {
                v.push(make_output(s, sid.as_deref(), weak, factory, reg)?);
            }
            Arc::new(CopyOutput { stores: v })
        }
        other => factory(other, id)?,
    };
    let counted: Arc<dyn Output> = Arc::new(CountedOutput { inner, counters });
    reg.plugins[index].output = Some(counted.clone());
    Ok(counted)
}

impl EventSink for Router {
    fn emit(&self, batch: EventBatch) -> BoxFuture<'_, Result<(), EmitError>> {
        self.emit_to("", batch)
    }
}
