//! `<buffer CHUNK_KEYS>` of the buffered outputs (elasticsearch, forward): its parameters, read
//! into a [`BufferConfig`]; [`super::BufferSettings::from_config`] turns that into limits.

use std::time::Duration;

use crate::config::params::{ParamSpec, SectionSpec, NOT_IMPLEMENTED};
use crate::config::section::Section;

/// `<buffer>`, checked.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// The section's argument (`<buffer tag, time>`).
    pub chunk_keys: Vec<String>,
    pub is_file: bool,
    pub file_path: Option<String>,
    pub chunk_limit_size: Option<u64>,
    /// `None`: the buffer type's default.
    pub total_limit_size: Option<u64>,
    /// `None`: no limit.
    pub chunk_limit_records: Option<u64>,
    /// `default`, `lazy`, `interval` or `immediate`.
    pub flush_mode: String,
    pub flush_interval: Duration,
    /// `None`: the buffer type's default.
    pub flush_at_shutdown: Option<bool>,
    pub flush_thread_count: u32,
    pub retry_wait: Duration,
    pub retry_max_interval: Option<Duration>,
    pub retry_forever: bool,
    pub retry_max_times: Option<u64>,
    pub retry_timeout: Duration,
    /// `throw_exception`, `block` or `drop_oldest_chunk`.
    pub overflow_action: String,
}

const FLUSH_WORKERS_WAIT: &str = "flush workers wait on the queue, they do not poll";

static PARAMS: &[ParamSpec] = &[
    ParamSpec::choice("@type", &["memory", "file"]).default("memory").doc("`file`: chunks in fsynced files under `path`, resumed after a restart (see durability.md)"),
    ParamSpec::string("path").doc("the file buffer's directory (required with `@type file`); one per output and process"),
    ParamSpec::size("chunk_limit_size").default("8m").doc("a chunk is queued for delivery at this size"),
    ParamSpec::integer("chunk_limit_records").doc("… or at this many events"),
    ParamSpec::size("total_limit_size").computed("`512m` (memory), `1g` (file)").doc("everything held (staged, queued, in flight); beyond it `overflow_action`"),
    ParamSpec::choice("flush_mode", &["default", "lazy", "interval", "immediate"]).default("default").doc("`default`: `lazy` with a `time` chunk key, else `interval`; `immediate`: after every push"),
    ParamSpec::time("flush_interval").default("60s").doc("with `interval`: a chunk is queued this long after its first event"),
    ParamSpec::bool("flush_at_shutdown").computed("`true` (memory), `false` (file)").doc("deliver what is buffered at shutdown (a file buffer otherwise keeps it for the next start)"),
    ParamSpec::integer("flush_thread_count").default("1").doc("chunks delivered at once"),
    ParamSpec::choice("overflow_action", &["throw_exception", "block", "drop_oldest_chunk"]).default("throw_exception").doc("buffer full: refuse (the client gets no ack), wait (TCP backpressure), or drop the oldest queued chunk"),
    ParamSpec::time("retry_wait").default("1s").doc("first wait after a failed delivery; doubles each time, ±12.5 % jitter"),
    ParamSpec::time("retry_max_interval").default("60s").doc("longest wait between retries"),
    ParamSpec::bool("retry_forever").default("false").doc("never give up a chunk"),
    ParamSpec::integer("retry_max_times").doc("give a chunk up after this many failed attempts"),
    ParamSpec::time("retry_timeout").default("72h").doc("give a chunk up after retrying this long"),
    ParamSpec::time("timekey").no_effect("not implemented: chunks are not cut per time slice (required with a `time` chunk key)"),
    ParamSpec::time("timekey_wait").default("600s").no_effect(NOT_IMPLEMENTED),
    ParamSpec::bool("timekey_use_utc").default("false").no_effect(NOT_IMPLEMENTED),
    ParamSpec::string("timekey_zone").no_effect(NOT_IMPLEMENTED),
    ParamSpec::choice("retry_type", &["exponential_backoff", "periodic"]).default("exponential_backoff").no_effect("not implemented: retries always back off exponentially"),
    ParamSpec::float("retry_exponential_backoff_base").default("2").no_effect("the base is always 2"),
    ParamSpec::bool("retry_randomize").default("true").no_effect("not implemented: the ±12.5 % jitter is always on"),
    ParamSpec::float("retry_secondary_threshold").default("0.8").no_effect("no `<secondary>` output takes over retries"),
    ParamSpec::integer("queued_chunks_limit_size").no_effect(NOT_IMPLEMENTED),
    ParamSpec::choice("compress", &["text", "gzip"]).default("text").no_effect(NOT_IMPLEMENTED),
    ParamSpec::bool("disable_chunk_backup").default("false").no_effect(NOT_IMPLEMENTED),
    ParamSpec::time("flush_thread_interval").default("1").no_effect(FLUSH_WORKERS_WAIT),
    ParamSpec::time("flush_thread_burst_interval").default("1").no_effect(FLUSH_WORKERS_WAIT),
    ParamSpec::time("delayed_commit_timeout").default("60").no_effect("outputs commit chunks when delivered; there is no delayed commit"),
    ParamSpec::integer("queue_limit_length").no_effect("Fluentd v0.12's limit; `total_limit_size` bounds the buffer"),
    ParamSpec::string("path_suffix").no_effect("logship names its chunk files itself"),
];

/// `<buffer>`'s declaration (outputs that ignore it use it with another status).
pub const SECTION: SectionSpec = SectionSpec::new("buffer", PARAMS)
    .arg("CHUNK_KEYS")
    .doc("How a buffered output holds events until they are delivered. The argument lists the chunk keys (`tag`, `time`): a `time` key needs `timekey` and makes `flush_mode default` lazy.");

/// Reads `<buffer>`.
pub fn parse(s: &mut Section<'_, '_>) -> BufferConfig {
    let ty: String = s.get("@type");
    s.set_what(format!("<buffer> (@type {ty})"));
    let chunk_keys: Vec<String> = s
        .element()
        .arg
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let is_file = ty == "file";
    let file_path: Option<String> = s.opt("path");
    match (&file_path, is_file) {
        (None, true) => {
            s.error_here("missing required parameter 'path' in <buffer> (@type file)");
        }
        (Some(_), false) => {
            if let Some(p) = s.given("path") {
                s.note_no_effect(&p.loc, "path", "only `@type file` keeps chunks in files");
            }
        }
        _ => {}
    }
    if chunk_keys.iter().any(|k| k == "time") && s.given("timekey").is_none() {
        s.error_here("<buffer time> needs a 'timekey' parameter");
    }
    BufferConfig {
        chunk_keys,
        is_file,
        file_path: file_path.filter(|_| is_file),
        chunk_limit_size: s.opt("chunk_limit_size"),
        total_limit_size: s.opt("total_limit_size"),
        chunk_limit_records: s.opt("chunk_limit_records"),
        flush_mode: s.get("flush_mode"),
        flush_interval: s.get("flush_interval"),
        flush_at_shutdown: s.opt("flush_at_shutdown"),
        flush_thread_count: s.get("flush_thread_count"),
        retry_wait: s.get("retry_wait"),
        retry_max_interval: s.opt("retry_max_interval"),
        retry_forever: s.get("retry_forever"),
        retry_max_times: s.opt("retry_max_times"),
        retry_timeout: s.get("retry_timeout"),
        overflow_action: s.get("overflow_action"),
    }
}
