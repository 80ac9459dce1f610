//! `<buffer CHUNK_KEYS>` of the buffered outputs (elasticsearch, forward): its parameters, read
//! into a [`BufferConfig`]; [`super::BufferSettings::from_config`] turns that into limits.

use std::time::Duration;

use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::section::Section;

/// `<buffer>`, checked.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// The section's argument (`<buffer tag, time>`).
    pub chunk_keys: Vec<String>,
    pub is_file: bool,
    pub file_path: Option<String>,
    /// Required with a `time` chunk key; at least 1 s.
    pub timekey: Option<Duration>,
    pub timekey_wait: Duration,
    pub timekey_use_utc: bool,
    /// `timekey_zone` as a fixed offset from UTC in seconds; `None`: local time.
    pub timekey_zone: Option<i32>,
    pub chunk_limit_size: Option<u64>,
    /// `None`: the buffer type's default.
    pub total_limit_size: Option<u64>,
    /// `None`: no limit.
    pub chunk_limit_records: Option<u64>,
    /// v0.12's `buffer_queue_limit`: `total_limit_size = chunk_limit_size × this` (Fluentd).
    pub queue_limit_length: Option<u64>,
    /// `None`: the same as `flush_thread_count` (Fluentd).
    pub queued_chunks_limit_size: Option<u64>,
    /// `compress gzip` (file buffers).
    pub compress_gzip: bool,
    /// `default`, `lazy`, `interval` or `immediate`.
    pub flush_mode: String,
    pub flush_interval: Duration,
    /// `None`: the buffer type's default.
    pub flush_at_shutdown: Option<bool>,
    pub flush_thread_count: u32,
    /// `exponential_backoff` or `periodic`.
    pub retry_type: String,
    pub retry_wait: Duration,
    pub retry_exponential_backoff_base: f64,
    pub retry_max_interval: Option<Duration>,
    pub retry_randomize: bool,
    pub retry_forever: bool,
    pub retry_max_times: Option<u64>,
    pub retry_timeout: Duration,
    /// `throw_exception`, `block` or `drop_oldest_chunk`.
    pub overflow_action: String,
    pub disable_chunk_backup: bool,
}

const FLUSH_WORKERS_WAIT: &str = "flush workers wait on the queue, they do not poll";

static PARAMS: &[ParamSpec] = &[
    ParamSpec::choice("@type", &["memory", "file"]).default("memory").doc("`file`: chunks in fsynced files under `path`, resumed after a restart (see durability.md)"),
    ParamSpec::string("path").doc("the file buffer's directory (required with `@type file`); one per output and process"),
    ParamSpec::time("timekey").doc("with a `time` chunk key (required then): one chunk per time slice this long (whole seconds, at least 1)"),
    ParamSpec::time("timekey_wait").default("600s").doc("a slice's chunk is delivered this long after the slice ends"),
    ParamSpec::bool("timekey_use_utc").default("false").doc("slices aligned to UTC instead of local time"),
    ParamSpec::string("timekey_zone").doc("slices aligned to this fixed offset (`+0900`, `-07:00`, `UTC`; default: local time); a named zone is an error"),
    ParamSpec::size("chunk_limit_size").default("8m").doc("a chunk is queued for delivery at this size (bytes before compression)"),
    ParamSpec::integer("chunk_limit_records").doc("… or at this many events"),
    ParamSpec::size("total_limit_size").computed("`512m` (memory), `1g` (file)").doc("everything held (staged, queued, in flight; file: bytes on disk); beyond it `overflow_action`"),
    ParamSpec::integer("queue_limit_length").doc("v0.12's queue length: `total_limit_size` = `chunk_limit_size` × this, unless `total_limit_size` is given"),
    ParamSpec::integer("queued_chunks_limit_size").computed("`flush_thread_count`").doc("at most this many chunks are queued by time (`flush_interval`, `timekey`); a due chunk then stays staged and grows"),
    ParamSpec::choice("compress", &["text", "gzip"]).default("text").doc("`gzip`: file-buffer chunks are gzip-compressed on disk (no effect on a memory buffer)"),
    ParamSpec::choice("flush_mode", &["default", "lazy", "interval", "immediate"]).default("default").doc("`default`: `lazy` with a `time` chunk key, else `interval`; `immediate`: after every push"),
    ParamSpec::time("flush_interval").default("60s").doc("with `interval`: a chunk is queued this long after its first event"),
    ParamSpec::bool("flush_at_shutdown").computed("`true` (memory), `false` (file)").doc("deliver what is buffered at shutdown (a file buffer otherwise keeps it for the next start)"),
    ParamSpec::integer("flush_thread_count").default("1").doc("chunks delivered at once"),
    ParamSpec::choice("overflow_action", &["throw_exception", "block", "drop_oldest_chunk"]).default("throw_exception").doc("buffer full: refuse (the client gets no ack), wait (TCP backpressure), or drop the oldest queued chunk"),
    ParamSpec::choice("retry_type", &["exponential_backoff", "periodic"]).default("exponential_backoff").doc("`periodic`: every wait is `retry_wait`"),
    ParamSpec::time("retry_wait").default("1s").doc("the first wait after a failed delivery (every wait with `periodic`)"),
    ParamSpec::float("retry_exponential_backoff_base").default("2").doc("each wait is this many times the previous one (at least 1)"),
    ParamSpec::time("retry_max_interval").default("60s").doc("longest wait between retries"),
    ParamSpec::bool("retry_randomize").default("true").doc("move each wait by up to ±12.5 % at random"),
    ParamSpec::bool("retry_forever").default("false").doc("never give up a chunk"),
    ParamSpec::integer("retry_max_times").doc("give a chunk up after this many failed attempts"),
    ParamSpec::time("retry_timeout").default("72h").doc("give a chunk up after retrying this long"),
    ParamSpec::bool("disable_chunk_backup").default("false").doc("delete unreadable chunk files instead of keeping them in `corrupt/`, and keep no copy of a chunk whose damaged frames were skipped"),
    ParamSpec::float("retry_secondary_threshold").default("0.8").no_effect("no `<secondary>` output takes over retries"),
    ParamSpec::time("flush_thread_interval").default("1").no_effect(FLUSH_WORKERS_WAIT),
    ParamSpec::time("flush_thread_burst_interval").default("1").no_effect(FLUSH_WORKERS_WAIT),
    ParamSpec::time("delayed_commit_timeout").default("60").no_effect("outputs commit chunks when delivered; the forward output's `ack_response_timeout` bounds the wait for acks"),
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
    let el = s.element();
    let chunk_keys: Vec<String> = el
        .arg
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let record_keys: Vec<&str> = chunk_keys
        .iter()
        .map(String::as_str)
        .filter(|k| *k != "tag" && *k != "time")
        .collect();
    if !record_keys.is_empty() {
        s.note_no_effect(
            &el.loc,
            &format!("chunk keys {}", record_keys.join(", ")),
            "chunks are split by tag and time only; placeholders are resolved per event",
        );
    }
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
    let by_time = chunk_keys.iter().any(|k| k == "time");
    let timekey: Option<Duration> = s.opt("timekey");
    if by_time && timekey.is_none() {
        s.error_here("<buffer time> needs a 'timekey' parameter");
    }
    if let (Some(k), Some(p)) = (timekey, s.given("timekey")) {
        if k < Duration::from_secs(1) {
            s.error(
                &p.loc,
                "parameter 'timekey' in <buffer>: must be at least 1s",
            );
        }
    }
    let timekey_zone = match (s.opt::<String>("timekey_zone"), s.given("timekey_zone")) {
        (Some(z), Some(p)) => match crate::config::values::parse_utc_offset(&z) {
            Ok(o) => Some(o),
            Err(e) => {
                let what = s.what().to_string();
                s.error(&p.loc, format!("parameter 'timekey_zone' in {what}: {e}"));
                None
            }
        },
        _ => None,
    };
    let compress: String = s.get("compress");
    if compress == "gzip" && !is_file {
        if let Some(p) = s.given("compress") {
            s.note_no_effect(
                &p.loc,
                "compress",
                "a memory buffer keeps events in wire form; `gzip` compresses file-buffer chunks on disk",
            );
        }
    }
    let flush_mode: String = s.get("flush_mode");
    let lazy = flush_mode == "lazy" || (flush_mode == "default" && by_time);
    if lazy || flush_mode == "immediate" {
        if let Some(p) = s.given("flush_interval") {
            let why = format!(
                "with flush_mode {} chunks are queued when full{} (as in Fluentd); set flush_mode interval to use it",
                if lazy { "lazy" } else { "immediate" },
                if by_time { " or when their time slice ends plus timekey_wait" } else { "" }
            );
            s.note_no_effect(&p.loc, "flush_interval", &why);
        }
    }
    let base: f64 = s.get("retry_exponential_backoff_base");
    if base < 1.0 || !base.is_finite() {
        if let Some(p) = s.given("retry_exponential_backoff_base") {
            s.error(
                &p.loc,
                "parameter 'retry_exponential_backoff_base' in <buffer>: must be at least 1",
            );
        }
    }
    BufferConfig {
        chunk_keys,
        is_file,
        file_path: file_path.filter(|_| is_file),
        timekey,
        timekey_wait: s.get("timekey_wait"),
        timekey_use_utc: s.get("timekey_use_utc"),
        timekey_zone,
        chunk_limit_size: s.opt("chunk_limit_size"),
        total_limit_size: s.opt("total_limit_size"),
        chunk_limit_records: s.opt("chunk_limit_records"),
        queue_limit_length: s.opt("queue_limit_length"),
        queued_chunks_limit_size: s.opt("queued_chunks_limit_size"),
        compress_gzip: compress == "gzip" && is_file,
        flush_mode,
        flush_interval: s.get("flush_interval"),
        flush_at_shutdown: s.opt("flush_at_shutdown"),
        flush_thread_count: s.get("flush_thread_count"),
        retry_type: s.get("retry_type"),
        retry_wait: s.get("retry_wait"),
        retry_exponential_backoff_base: base.max(1.0),
        retry_max_interval: s.opt("retry_max_interval"),
        retry_randomize: s.get("retry_randomize"),
        retry_forever: s.get("retry_forever"),
        retry_max_times: s.opt("retry_max_times"),
        retry_timeout: s.get("retry_timeout"),
        overflow_action: s.get("overflow_action"),
        disable_chunk_backup: s.get("disable_chunk_backup"),
    }
}
