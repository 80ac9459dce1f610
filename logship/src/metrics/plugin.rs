//! Per-plugin counters kept by the router, plugin ids, and what outputs report themselves.
//!
//! The router wraps every output ([`CountedOutput`]) and filter ([`CountedFilter`]) it builds:
//! one relaxed atomic add per batch, never per event, so the hot path does not notice.
//! Outputs that keep their own counters (retries, dead letters, buffer) report them through
//! [`crate::output::Output::stats`], read only when someone scrapes.
//!
//! # Plugin ids
//!
//! A plugin's id is its `@id` when set. Otherwise logship generates one that stays the same
//! across restarts as long as the config does not change: `<prefix>_<type>.<n>`, where the
//! prefix is `in` (sources), `filter` or `out` (matches and `<store>`s), as in Fluentd's
//! plugin file names, and `n` counts the plugins of that prefix and type in config order
//! (sources; then the root's directives top to bottom; then each `<label>` by name; a copy's
//! stores right after the copy). E.g. `in_forward.0`, `filter_parser.0`, `out_elasticsearch.0`.
//! Set `@id` for ids that survive edits of the config.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::event::{BoxFuture, EmitError, Event, EventBatch};
use crate::filter::Filter;
use crate::output::Output;

/// What kind of plugin an id belongs to (Fluentd's `plugin_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Input,
    Filter,
    Output,
}

impl Category {
    /// `input`, `filter` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Input => "input",
            Category::Filter => "filter",
            Category::Output => "output",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Category::Input => "in",
            Category::Filter => "filter",
            Category::Output => "out",
        }
    }
}

/// Hands out plugin ids (see the module docs). Use one allocator per category, in config order.
#[derive(Debug, Default)]
pub struct PluginIds {
    next: HashMap<(Category, String), usize>,
}

impl PluginIds {
    /// `explicit` (the `@id`) if given, else the next generated id for (`category`, `type_name`).
    pub fn id(&mut self, explicit: Option<&str>, category: Category, type_name: &str) -> String {
        // Numbering counts every plugin of the type, with or without @id, so that setting an
        // @id on one plugin does not renumber the others.
        let n = self
            .next
            .entry((category, type_name.to_string()))
            .or_insert(0);
        let generated = format!("{}_{type_name}.{n}", category.prefix());
        *n += 1;
        match explicit {
            Some(id) if !id.trim().is_empty() => id.to_string(),
            _ => generated,
        }
    }
}

/// Counters the router keeps for one filter or output.
#[derive(Debug, Default)]
pub struct PluginCounters {
    /// Filter: events passed in. Output: events the output accepted (`emit` returned Ok).
    pub events_in: AtomicU64,
    /// Filter: events passed on (including events released later by a timer).
    pub events_out: AtomicU64,
    /// Output: batches the output accepted (Fluentd's `emit_count`).
    pub batches_in: AtomicU64,
    /// Output: events the output refused (`emit` returned an error; the input did not ack).
    pub events_refused: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A filter or output of the pipeline, as the monitor lists it.
#[derive(Clone)]
pub struct PluginEntry {
    pub id: String,
    pub type_name: &'static str,
    pub category: Category,
    pub counters: Arc<PluginCounters>,
    /// For outputs: the output, to read [`Output::stats`] at scrape time.
    pub output: Option<Arc<dyn Output>>,
    /// For filters: the filter, to read [`Filter::invalid_records`] at scrape time.
    pub filter: Option<Arc<dyn Filter>>,
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEntry")
            .field("id", &self.id)
            .field("type_name", &self.type_name)
            .field("category", &self.category)
            .finish()
    }
}

/// A buffer's state, read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferGauges {
    /// Chunks enqueued and not yet taken by a flush worker.
    pub queue_length: u64,
    /// Bytes held: staged, queued and in flight.
    pub total_bytes: u64,
    /// `total_limit_size`.
    pub limit_bytes: u64,
    /// Chunks discarded by `overflow_action drop_oldest_chunk`.
    pub dropped_chunks: u64,
}

impl BufferGauges {
    /// The gauges of an output's buffer (memory or file), read now.
    pub fn of(buffer: &crate::buffer::Buffer) -> Self {
        let st = buffer.stats();
        Self {
            queue_length: st.queue_length,
            total_bytes: st.total_bytes,
            limit_bytes: buffer.settings().total_limit_size,
            dropped_chunks: st.dropped_chunks,
        }
    }
}

/// What an output counts itself (`None`: the output has no such thing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// Events delivered downstream (Elasticsearch: indexed, or already there on `create`).
    pub delivered: Option<u64>,
    /// Event retries (an event retried twice counts 2).
    pub retries: Option<u64>,
    /// Events given up on (dead letter file or ERROR log).
    pub dead_lettered: Option<u64>,
    /// Requests sent downstream.
    pub requests: Option<u64>,
    /// Requests that failed as a whole (no answer, or a 429/5xx for all of it).
    pub failed_requests: Option<u64>,
    /// The output's buffer.
    pub buffer: Option<BufferGauges>,
}

/// An output with the router's counters around it.
pub struct CountedOutput {
    pub inner: Arc<dyn Output>,
    pub counters: Arc<PluginCounters>,
}

impl Output for CountedOutput {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let n = batch.len() as u64;
            let r = self.inner.emit(batch).await;
            if r.is_ok() {
                add(&self.counters.events_in, n);
                add(&self.counters.batches_in, 1);
            } else {
                add(&self.counters.events_refused, n);
            }
            r
        })
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.inner.shutdown()
    }
    fn stats(&self) -> OutputStats {
        self.inner.stats()
    }
}

/// A filter with the router's counters around it.
pub struct CountedFilter {
    pub inner: Arc<dyn Filter>,
    pub counters: Arc<PluginCounters>,
}

impl Filter for CountedFilter {
    fn filter(&self, tag: &str, events: Vec<Event>) -> Vec<Event> {
        add(&self.counters.events_in, events.len() as u64);
        let out = self.inner.filter(tag, events);
        add(&self.counters.events_out, out.len() as u64);
        out
    }
    fn filter_with_errors(
        &self,
        tag: &str,
        events: Vec<Event>,
        errors: &mut Vec<Event>,
    ) -> Vec<Event> {
        add(&self.counters.events_in, events.len() as u64);
        let out = self.inner.filter_with_errors(tag, events, errors);
        add(&self.counters.events_out, out.len() as u64);
        out
    }
    fn invalid_records(&self) -> u64 {
        self.inner.invalid_records()
    }
    fn has_timers(&self) -> bool {
        self.inner.has_timers()
    }
    fn flush(&self, force: bool) -> Vec<EventBatch> {
        let out = self.inner.flush(force);
        let n: usize = out.iter().map(EventBatch::len).sum();
        add(&self.counters.events_out, n as u64);
        out
    }
    fn timeout_label(&self) -> Option<&str> {
        self.inner.timeout_label()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_per_category_and_type_and_keep_explicit_ones() {
        let mut ids = PluginIds::default();
        assert_eq!(ids.id(None, Category::Input, "forward"), "in_forward.0");
        assert_eq!(ids.id(None, Category::Output, "forward"), "out_forward.0");
        assert_eq!(ids.id(Some("edge"), Category::Input, "forward"), "edge");
        assert_eq!(ids.id(None, Category::Input, "forward"), "in_forward.2");
        assert_eq!(ids.id(None, Category::Filter, "parser"), "filter_parser.0");
    }
}
