//! The exposition: every metric read from its source at scrape time, encoded by the
//! `prometheus-client` crate in the Prometheus text format 0.0.4; and Fluentd's
//! `/api/plugins.json` built from the same readings.
//!
//! Counters are given to the encoder without their `_total` suffix; it appends it (and
//! writes `# HELP`/`# TYPE` for the full name), so `logship_input_events` is exposed as
//! `logship_input_events_total`. Labels: `plugin_id` and `type` on every plugin metric.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::plugin::{get, Category};
use super::process::ProcessStats;
use super::Monitor;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

type Labels = Vec<(&'static str, String)>;

struct Family {
    name: &'static str,
    help: &'static str,
    ty: MetricType,
    rows: Vec<(Labels, Value)>,
}

/// Families in a fixed order, rows appended as the sources are read.
struct Families(Vec<Family>);

impl Families {
    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        ty: MetricType,
        labels: Labels,
        v: Value,
    ) {
        match self.0.iter_mut().find(|f| f.name == name && f.ty == ty) {
            Some(f) => f.rows.push((labels, v)),
            None => self.0.push(Family {
                name,
                help,
                ty,
                rows: vec![(labels, v)],
            }),
        }
    }
    fn counter(&mut self, name: &'static str, help: &'static str, labels: &Labels, v: u64) {
        self.add(
            name,
            help,
            MetricType::Counter,
            labels.clone(),
            Value::Int(v),
        );
    }
    fn gauge(&mut self, name: &'static str, help: &'static str, labels: &Labels, v: u64) {
        self.add(name, help, MetricType::Gauge, labels.clone(), Value::Int(v));
    }
}

fn labels(id: &str, type_name: &str) -> Labels {
    vec![
        ("plugin_id", id.to_string()),
        ("type", type_name.to_string()),
    ]
}

/// Reads every source now.
fn gather(m: &Monitor) -> Families {
    let mut f = Families(Vec::new());
    for i in m.inputs() {
        let l = labels(&i.id, i.type_name);
        f.gauge(
            "logship_input_listening",
            "1 while the source's socket is bound and served, else 0",
            &l,
            u64::from(i.listening.load(Ordering::Acquire)),
        );
        let Some(fm) = &i.forward else { continue };
        let rows: [(&'static str, &'static str, u64); 16] = [
            (
                "logship_input_events",
                "Events received and handed to the pipeline",
                get(&fm.events_received),
            ),
            (
                "logship_input_bytes",
                "Bytes read from clients (after TLS, before decompression)",
                get(&fm.bytes_received),
            ),
            (
                "logship_input_frames",
                "Forward messages (frames) decoded, heartbeats and handshake messages included",
                get(&fm.frames_received),
            ),
            (
                "logship_input_connections",
                "Connections accepted",
                get(&fm.connections_accepted),
            ),
            (
                "logship_input_malformed_frames",
                "Frames that could not be decoded (each closed its connection)",
                get(&fm.frames_malformed),
            ),
            (
                "logship_input_handshake_failures",
                "Failed <security> handshakes (wrong shared key, user or password, or no PING)",
                get(&fm.handshake_failures),
            ),
            (
                "logship_input_acks_sent",
                "Acks sent for chunks held by the pipeline",
                get(&fm.acks_sent),
            ),
            (
                "logship_input_skipped_events",
                "Invalid events skipped (skip_invalid_event)",
                get(&fm.events_skipped),
            ),
            (
                "logship_input_refused_batches",
                "Batches the pipeline refused (not acked; the connection was closed)",
                get(&fm.emit_failures),
            ),
            (
                "logship_input_heartbeats",
                "UDP heartbeats answered",
                get(&fm.heartbeats),
            ),
            (
                "logship_input_connection_cap_reached",
                "New connections that found max_connections reached",
                get(&fm.connection_cap_reached),
            ),
            (
                "logship_input_evicted_connections",
                "Connections evicted to admit a new one (the stalest that delivered nothing)",
                get(&fm.connections_evicted),
            ),
            (
                "logship_input_timed_out_connections",
                "Connections closed because a frame missed handshake_timeout, read_timeout or min_receive_rate",
                get(&fm.connections_timed_out),
            ),
            (
                "logship_input_frames_over_budget",
                "Frames refused because they are larger than the whole memory budget",
                get(&fm.frames_over_budget),
            ),
            (
                "logship_input_memory_waits",
                "Times a connection waited for the memory budget before reading or inflating more",
                get(&fm.memory_waits),
            ),
            (
                "logship_input_chunk_size_warnings",
                "Frames larger than chunk_size_warn_limit (accepted, with a WARN)",
                get(&fm.chunk_size_warnings),
            ),
        ];
        for (name, help, v) in rows {
            f.counter(name, help, &l, v);
        }
        f.gauge(
            "logship_input_connections",
            "Connections open now",
            &l,
            get(&fm.connections_active),
        );
        f.gauge(
            "logship_input_connection_limit",
            "max_connections in force (from the open-file limit unless set)",
            &l,
            get(&fm.connection_limit),
        );
    }
    for p in m.router().plugins() {
        let l = labels(&p.id, p.type_name);
        let c = &p.counters;
        match p.category {
            Category::Filter => {
                f.counter(
                    "logship_filter_events_in",
                    "Events passed into the filter",
                    &l,
                    get(&c.events_in),
                );
                f.counter(
                    "logship_filter_events_out",
                    "Events the filter passed on (including ones released later by a timer)",
                    &l,
                    get(&c.events_out),
                );
                if let Some(fl) = &p.filter {
                    f.counter(
                        "logship_filter_invalid_records",
                        "Records the filter could not process (parser: unparsable values), each counted",
                        &l,
                        fl.invalid_records(),
                    );
                }
            }
            Category::Output | Category::Input => {
                f.counter(
                    "logship_output_events",
                    "Events emitted to the output (it accepted them)",
                    &l,
                    get(&c.events_in),
                );
                f.counter(
                    "logship_output_batches",
                    "Batches emitted to the output (Fluentd's emit_count)",
                    &l,
                    get(&c.batches_in),
                );
                f.counter(
                    "logship_output_refused_events",
                    "Events the output refused (buffer overflow, shutting down, error)",
                    &l,
                    get(&c.events_refused),
                );
                let Some(o) = &p.output else { continue };
                let s = o.stats();
                if let Some(v) = s.delivered {
                    f.counter(
                        "logship_output_delivered_events",
                        "Events delivered downstream (Elasticsearch: indexed, or already there)",
                        &l,
                        v,
                    );
                }
                if let Some(v) = s.retries {
                    f.counter(
                        "logship_output_retries",
                        "Event retries (an event retried twice counts 2)",
                        &l,
                        v,
                    );
                }
                if let Some(v) = s.dead_lettered {
                    f.counter(
                        "logship_output_dead_lettered",
                        "Events given up on (dead letter file, or logged at ERROR)",
                        &l,
                        v,
                    );
                }
                if let Some(v) = s.requests {
                    f.counter(
                        "logship_output_requests",
                        "Requests sent downstream (Elasticsearch: _bulk requests)",
                        &l,
                        v,
                    );
                }
                if let Some(v) = s.failed_requests {
                    f.counter(
                        "logship_output_failed_requests",
                        "Requests that failed as a whole (no answer, or 429/5xx for the request)",
                        &l,
                        v,
                    );
                }
                if let Some(b) = s.buffer {
                    f.gauge(
                        "logship_buffer_queue_length",
                        "Chunks enqueued, waiting for a flush worker",
                        &l,
                        b.queue_length,
                    );
                    f.gauge(
                        "logship_buffer_total_bytes",
                        "Bytes held by the buffer: staged, queued and in flight",
                        &l,
                        b.total_bytes,
                    );
                    f.gauge(
                        "logship_buffer_limit_bytes",
                        "The buffer's total_limit_size",
                        &l,
                        b.limit_bytes,
                    );
                    f.counter(
                        "logship_buffer_dropped_chunks",
                        "Chunks dropped by overflow_action drop_oldest_chunk",
                        &l,
                        b.dropped_chunks,
                    );
                }
            }
        }
    }
    f.add(
        "logship_router_unmatched_events",
        "Events dropped because no <match> matched their tag",
        MetricType::Counter,
        Vec::new(),
        Value::Int(m.router().unmatched_events()),
    );
    f.add(
        "logship_build_info",
        "Always 1; the version is in the label",
        MetricType::Gauge,
        vec![("version", env!("CARGO_PKG_VERSION").to_string())],
        Value::Int(1),
    );
    let budget = crate::memory_budget::MemoryBudget::global();
    for (name, help, ty, v) in [
        (
            "logship_memory_budget_bytes",
            "The process memory budget (<system> memory_budget)",
            MetricType::Gauge,
            budget.limit(),
        ),
        (
            "logship_memory_budget_used_bytes",
            "Bytes of the memory budget held now: receive buffers, inflate windows, memory buffers",
            MetricType::Gauge,
            budget.used(),
        ),
        (
            "logship_memory_budget_waits",
            "Reservations that had to wait for the memory budget (backpressure)",
            MetricType::Counter,
            budget.waits(),
        ),
    ] {
        f.add(name, help, ty, Vec::new(), Value::Int(v));
    }
    let p = ProcessStats::read();
    let mut proc_metric = |name, help, ty, v: Option<Value>| {
        if let Some(v) = v {
            f.add(name, help, ty, Vec::new(), v);
        }
    };
    proc_metric(
        "process_cpu_seconds",
        "User and system CPU time spent, in seconds",
        MetricType::Counter,
        p.cpu_seconds.map(Value::Float),
    );
    proc_metric(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        MetricType::Gauge,
        p.resident_memory_bytes.map(Value::Int),
    );
    proc_metric(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        MetricType::Gauge,
        p.virtual_memory_bytes.map(Value::Int),
    );
    proc_metric(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds",
        MetricType::Gauge,
        p.start_time_seconds.map(Value::Float),
    );
    proc_metric(
        "process_open_fds",
        "Open file descriptors",
        MetricType::Gauge,
        p.open_fds.map(Value::Int),
    );
    f
}

/// The collector the registry calls on every scrape.
#[derive(Debug)]
struct Scrape(Arc<Monitor>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for fam in gather(&self.0).0 {
            let mut me = encoder.encode_descriptor(fam.name, fam.help, None, fam.ty)?;
            for (labels, v) in &fam.rows {
                let mut m = me.encode_family(labels)?;
                match (fam.ty, *v) {
                    (MetricType::Counter, Value::Int(v)) => {
                        m.encode_counter::<NoLabelSet, _, u64>(&v, None)?
                    }
                    (MetricType::Counter, Value::Float(v)) => {
                        m.encode_counter::<NoLabelSet, _, f64>(&v, None)?
                    }
                    (_, Value::Int(v)) => m.encode_gauge(&v)?,
                    (_, Value::Float(v)) => m.encode_gauge(&v)?,
                }
            }
        }
        Ok(())
    }
}

/// A registry that reads `monitor` at every encode.
pub fn registry(monitor: Arc<Monitor>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Scrape(monitor)));
    r
}

/// The exposition in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

/// Fluentd's `/api/plugins.json`: `{"plugins":[{plugin_id, plugin_category, type,
/// output_plugin, retry_count, emit_records, emit_count, buffer_*...}]}`.
pub fn plugins_json(m: &Monitor) -> serde_json::Value {
    use serde_json::json;
    let mut list = Vec::new();
    for i in m.inputs() {
        let events = i.forward.as_ref().map_or(0, |f| get(&f.events_received));
        list.push(json!({
            "plugin_id": i.id,
            "plugin_category": "input",
            "type": i.type_name,
            "output_plugin": false,
            "retry_count": null,
            "emit_records": events,
        }));
    }
    for p in m.router().plugins() {
        let c = &p.counters;
        match p.category {
            Category::Filter => list.push(json!({
                "plugin_id": p.id,
                "plugin_category": "filter",
                "type": p.type_name,
                "output_plugin": false,
                "retry_count": null,
                "emit_records": get(&c.events_out),
            })),
            Category::Output | Category::Input => {
                let s = p.output.as_ref().map(|o| o.stats()).unwrap_or_default();
                let mut o = json!({
                    "plugin_id": p.id,
                    "plugin_category": "output",
                    "type": p.type_name,
                    "output_plugin": true,
                    "retry_count": s.retries.unwrap_or(0),
                    "emit_records": get(&c.events_in),
                    "emit_count": get(&c.batches_in),
                    "write_count": s.requests.unwrap_or(0),
                    "rollback_count": s.failed_requests.unwrap_or(0),
                });
                if let Some(d) = s.dead_lettered {
                    o["dead_lettered_records"] = json!(d);
                }
                if let Some(b) = s.buffer {
                    o["buffer_queue_length"] = json!(b.queue_length);
                    o["buffer_total_queued_size"] = json!(b.total_bytes);
                    o["drop_oldest_chunk_count"] = json!(b.dropped_chunks);
                    let free = if b.limit_bytes == 0 {
                        100.0
                    } else {
                        100.0 * (1.0 - b.total_bytes as f64 / b.limit_bytes as f64).max(0.0)
                    };
                    o["buffer_available_buffer_space_ratios"] = json!((free * 10.0).round() / 10.0);
                }
                list.push(o);
            }
        }
    }
    json!({ "plugins": list })
}
