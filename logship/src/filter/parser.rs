//! `@type parser` with `<parse> @type json`: parses the string field `key_name` (default
//! `log`) as a JSON object and merges it into the record — in wire form: the JSON text is
//! transcoded straight to msgpack ([`crate::json_msgpack`], as strict as `serde_json`) and the
//! new record is built by copying the original entries' bytes and the parsed entries' bytes.
//! No value tree is built, and the records of a batch share one allocation.
//!
//! - `reserve_data false` (default): the record becomes the parsed object;
//!   `reserve_data true`: the original fields are kept and the parsed ones added after them (a
//!   parsed key replaces an original key of the same name); `remove_key_name_field true` drops
//!   the source field when parsing succeeded.
//! - `inject_key_prefix P`: parsed keys become `P<key>`; `hash_value_field F`: the parsed object
//!   is stored under `F` instead of being merged.
//! - time: the parsed object's `time_key` (default `time`) is read by [`TimeParser`]
//!   (`time_type`, `time_format`, `localtime`/`utc`/`timezone`); the event time becomes it and
//!   the key is removed unless `keep_time_key true`; `reserve_time true` keeps the original
//!   event time. A time that cannot be read makes the record unparsable, as in Fluentd.
//! - `null_value_pattern` (a regular expression, searched anywhere in the value as Ruby's
//!   `match` does) and `null_empty_string`: a parsed top-level string value that matches
//!   becomes null.
//! - `replace_invalid_sequence true`: invalid UTF-8 in the value is replaced with `?` before
//!   parsing (otherwise such a value is unparsable).
//!
//! # Unparsable records
//! A value that is missing, not a string, not JSON, not an object, or whose time cannot be read:
//! - is counted ([`ParserFilter::invalid_count`], the `logship_filter_invalid_records` metric —
//!   every one of them);
//! - is logged at WARN through a [`LogLimiter`]: the first [`WARN_BURST`] per
//!   [`WARN_INTERVAL`] with the reason and an example of the value, then one line per interval
//!   carrying the number suppressed, so a producer of bad lines cannot flood logship's own log;
//! - with `emit_invalid_record_to_error true` (the default) **and a `<label @ERROR>` in the
//!   config**, goes to that label with its tag, time and original record, as Fluentd's
//!   `emit_error_event` does; like Fluentd, it then also stays in the stream (unchanged) only
//!   when the key was missing or the value was JSON but not an object, with `reserve_data true`;
//! - otherwise passes through unchanged. Fluentd drops it from the stream in that case (and
//!   without `@ERROR` logs one warning per record); logship loses no log line instead.

use std::any::Any;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use regex::Regex;

use super::time_parse::{self, TimeParser};
use super::{Filter, FilterPlugin};
use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::{Event, EventTime};
use crate::json_msgpack::{object_entries, JsonError, ObjectEntry};
use crate::log_limit::LogLimiter;
use crate::pipeline::record::{self, map_header, read_str, skip_value};

/// `@type parser`, checked.
#[derive(Debug, Clone)]
pub struct ParserFilterConfig {
    pub key_name: String,
    pub reserve_data: bool,
    pub reserve_time: bool,
    pub remove_key_name_field: bool,
    pub inject_key_prefix: Option<String>,
    pub hash_value_field: Option<String>,
    pub emit_invalid_record_to_error: bool,
    /// Invalid UTF-8 in the parsed value is replaced with `?` instead of failing the record.
    pub replace_invalid_sequence: bool,
    pub parse: ParseConfig,
}

impl Default for ParserFilterConfig {
    /// The declared defaults.
    fn default() -> Self {
        Self {
            key_name: "log".into(),
            reserve_data: false,
            reserve_time: false,
            remove_key_name_field: false,
            inject_key_prefix: None,
            hash_value_field: None,
            emit_invalid_record_to_error: true,
            replace_invalid_sequence: false,
            parse: ParseConfig::default(),
        }
    }
}

/// How `<parse>` reads the time field (`time_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeType {
    /// Not set and no `time_format`: a number of seconds, or an RFC 3339 string.
    Auto,
    /// `string`: `time_format` (strptime), else RFC 3339.
    String,
    /// `float`: seconds with a fraction (a number, or a decimal string).
    Float,
    /// `unixtime`: whole seconds (a number or a decimal string; the fraction is dropped).
    Unixtime,
}

/// The zone of a `time_format` without `%z` (`localtime`, `utc`, `timezone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseZone {
    /// The host's local zone (`localtime true`, Fluentd's default).
    Local,
    /// `utc true` / `localtime false`.
    Utc,
    /// `timezone +09:00`: a fixed offset, in seconds east of UTC.
    Fixed(i32),
}

/// `<parse>` (only `@type json`).
#[derive(Debug, Clone)]
pub struct ParseConfig {
    /// `None`: `time_key ""`, the event time is kept.
    pub time_key: Option<String>,
    pub keep_time_key: bool,
    pub time_type: TimeType,
    /// A Ruby strptime format, or `%iso8601`.
    pub time_format: Option<String>,
    pub zone: ParseZone,
    /// A regular expression: a parsed top-level string value that matches it becomes null.
    pub null_value_pattern: Option<String>,
    /// A parsed top-level empty string becomes null.
    pub null_empty_string: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self {
            time_key: Some("time".into()),
            keep_time_key: false,
            time_type: TimeType::Auto,
            time_format: None,
            zone: ParseZone::Local,
            null_value_pattern: None,
            null_empty_string: false,
        }
    }
}

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string("key_name").default("log").doc("the field holding the JSON text"),
    ParamSpec::bool("reserve_data").default("false").doc("keep the record's other fields (a parsed key replaces one of the same name)"),
    ParamSpec::bool("reserve_time").default("false").doc("keep the event's time even when the parsed object has a time"),
    ParamSpec::bool("remove_key_name_field").default("false").doc("with `reserve_data`: drop `key_name` once parsed"),
    ParamSpec::string("inject_key_prefix").doc("prefix every parsed key with this"),
    ParamSpec::string("hash_value_field").doc("store the parsed object under this key instead of merging it"),
    ParamSpec::bool("emit_invalid_record_to_error").default("true").doc("with a `<label @ERROR>`: unparsable records go there (as Fluentd's emit_error_event); without it, or `false`, they pass on unchanged (Fluentd drops them)"),
    ParamSpec::bool("replace_invalid_sequence").default("false").doc("replace invalid UTF-8 in the value with `?` instead of leaving the record unparsed"),
];

static PARSE: SectionSpec = SectionSpec::new(
    "parse",
    &[
        ParamSpec::choice("@type", &["json"]).required().doc("the parser: only `json`"),
        ParamSpec::string("time_key").default("time").doc("the parsed field that becomes the event time, then removed; `\"\"`: none"),
        ParamSpec::bool("keep_time_key").default("false").doc("keep `time_key` in the record"),
        ParamSpec::choice("json_parser", &["oj", "yajl", "json"]).default("oj").no_effect("logship has one JSON parser"),
        ParamSpec::choice("time_type", &["float", "unixtime", "string"]).doc("`float` / `unixtime` (a number or a decimal string) / `string` (`time_format`, else RFC 3339); not set: a number or an RFC 3339 string"),
        ParamSpec::string("time_format").doc("Ruby strptime (via chrono: `%N`, `%L`, `%z`, `%s`, `%iso8601`; `%Q` unsupported); implies `time_type string`"),
        ParamSpec::bool("utc").doc("a `time_format` without `%z` is UTC (needs `time_format`)"),
        ParamSpec::bool("localtime").doc("a `time_format` without `%z` is the host's local time (the default)"),
        ParamSpec::string("timezone").doc("a `time_format` without `%z` is at this offset (`+09:00`, `-05`, `UTC`; zone names are an error)"),
        ParamSpec::string("null_value_pattern").doc("a parsed top-level string matching this regular expression becomes null"),
        ParamSpec::bool("null_empty_string").default("false").doc("a parsed top-level empty string becomes null"),
        ParamSpec::bool("estimate_current_event").default("true").no_effect("an event without a parsed time keeps the time it came with"),
        ParamSpec::size("stream_buffer_size").no_effect("the JSON is parsed whole"),
    ],
)
.doc("How `key_name` is parsed. Required.");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn FilterPlugin> = PluginSpec {
    type_name: "parser",
    summary:
        "Parses a string field (Docker's `log`) as a JSON object and merges it into the record.",
    params: PARAMS,
    sections: &[&PARSE],
    parse,
};

fn parse_section(s: &mut Section<'_, '_>) -> ParseConfig {
    let ty: String = s.get("@type");
    s.set_what(format!("<parse> (@type {ty})"));
    let time_key: String = s.get("time_key");
    let keep_time_key = s.get("keep_time_key");
    let time_format: Option<String> = s.opt("time_format");
    let time_type = match s.opt::<String>("time_type").as_deref() {
        Some("string") => TimeType::String,
        Some("float") => TimeType::Float,
        Some("unixtime") => TimeType::Unixtime,
        // Fluentd: time_format implies string.
        _ if time_format.is_some() => TimeType::String,
        _ => TimeType::Auto,
    };
    if let (Some(f), TimeType::String) = (&time_format, time_type) {
        if let Err(e) = time_parse::check_format(f) {
            let loc = s.given("time_format").map(|p| p.loc.clone());
            let msg = format!("parameter 'time_format' in {}: {e}", s.what());
            match loc {
                Some(l) => s.error(&l, msg),
                None => s.error_here(msg),
            }
        }
    }
    let null_value_pattern: Option<String> = s.opt("null_value_pattern");
    if let Some(pat) = &null_value_pattern {
        if let Err(e) = Regex::new(pat) {
            let loc = s.given("null_value_pattern").map(|p| p.loc.clone());
            let msg = format!(
                "parameter 'null_value_pattern' in {}: invalid regular expression: {e}",
                s.what()
            );
            match loc {
                Some(l) => s.error(&l, msg),
                None => s.error_here(msg),
            }
        }
    }
    let null_empty_string = s.get("null_empty_string");
    let utc: Option<bool> = s.opt("utc");
    let localtime: Option<bool> = s.opt("localtime");
    let timezone = match s.opt::<String>("timezone") {
        None => None,
        Some(tz) => match time_parse::parse_timezone(&tz) {
            Ok(o) => Some(o),
            Err(e) => {
                let loc = s.given("timezone").map(|p| p.loc.clone());
                let msg = format!("parameter 'timezone' in {}: {e}", s.what());
                if let Some(l) = loc {
                    s.error(&l, msg);
                }
                None
            }
        },
    };
    let zone = match (utc, localtime, timezone) {
        (Some(_), Some(_), _) => {
            let loc = s.given("utc").map(|p| p.loc.clone());
            let msg = format!(
                "both utc and localtime are set in {}; use only one of them",
                s.what()
            );
            if let Some(l) = loc {
                s.error(&l, msg);
            }
            ParseZone::Local
        }
        (_, _, Some(offset)) => ParseZone::Fixed(offset),
        (Some(true), _, None) | (_, Some(false), None) => ParseZone::Utc,
        _ => ParseZone::Local,
    };
    // As in Fluentd: a zone only means something for a strptime format.
    let strptime = matches!(time_type, TimeType::String | TimeType::Auto);
    for name in ["utc", "localtime", "timezone"] {
        let given = s.given(name).map(|p| p.loc.clone());
        if let Some(loc) = given {
            if strptime && time_format.is_none() && (zone != ParseZone::Local || name == "timezone")
            {
                let msg = format!(
                    "'{name}' in {} needs a time_format (it applies to times parsed with it)",
                    s.what()
                );
                s.error(&loc, msg);
            }
            break;
        }
    }
    ParseConfig {
        time_key: (!time_key.is_empty()).then_some(time_key),
        keep_time_key,
        time_type,
        time_format,
        zone,
        null_value_pattern,
        null_empty_string,
    }
}

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn FilterPlugin> {
    let mut cfg = ParserFilterConfig {
        key_name: s.get("key_name"),
        reserve_data: s.get("reserve_data"),
        reserve_time: s.get("reserve_time"),
        remove_key_name_field: s.get("remove_key_name_field"),
        inject_key_prefix: s.opt("inject_key_prefix"),
        hash_value_field: s.opt("hash_value_field"),
        emit_invalid_record_to_error: s.get("emit_invalid_record_to_error"),
        replace_invalid_sequence: s.get("replace_invalid_sequence"),
        parse: ParseConfig::default(),
    };
    match s.child("parse", parse_section) {
        Some(p) => cfg.parse = p,
        None => {
            let msg = format!(
                "missing <parse> section in {}; supported: <parse> @type json",
                s.what()
            );
            s.error_here(msg);
        }
    }
    Arc::new(cfg)
}

impl FilterPlugin for ParserFilterConfig {
    fn type_name(&self) -> &'static str {
        "parser"
    }
    fn describe(&self) -> String {
        format!(
            "parser key_name={} reserve_data={}",
            self.key_name, self.reserve_data
        )
    }
    fn build(&self) -> Arc<dyn Filter> {
        Arc::new(ParserFilter::new(self.clone()))
    }
    fn build_with_error_label(&self, error_label: bool) -> Arc<dyn Filter> {
        Arc::new(ParserFilter::with_error_label(self.clone(), error_label))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Unparsable records logged in full per [`WARN_INTERVAL`] (per filter).
pub const WARN_BURST: u32 = 5;
/// After the burst, one WARN line per interval says how many were not logged.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Characters of the value shown in a WARN line.
const EXAMPLE_CHARS: usize = 200;

pub struct ParserFilter {
    cfg: ParserFilterConfig,
    time: TimeParser,
    null_pattern: Option<Regex>,
    /// Unparsable records go to the `@ERROR` label.
    to_error_label: bool,
    invalid: AtomicU64,
    warn: LogLimiter,
}

/// Why a record was left unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    NotAMap,
    Missing,
    NotAString,
    NotJson(JsonError),
    NotAnObject,
    BadTime(String),
}

impl Failure {
    fn reason(&self) -> Cow<'static, str> {
        match self {
            Failure::NotAMap => "record is not a msgpack map".into(),
            Failure::Missing => "key_name field is missing".into(),
            Failure::NotAString => "key_name field is not a string".into(),
            Failure::NotJson(e) => format!("value is not valid JSON ({e})").into(),
            Failure::NotAnObject => "value is not a JSON object".into(),
            Failure::BadTime(e) => format!("invalid time value: {e}").into(),
        }
    }
}

/// Offsets of one entry of the incoming record.
struct RawEntry {
    key: Range<usize>,
    /// The key's text, when it is a str/bin.
    text: Option<Range<usize>>,
    value: Range<usize>,
}

/// Buffers reused across the events of a batch.
#[derive(Default)]
struct Scratch {
    rec: Vec<RawEntry>,
    parsed: Vec<u8>,
    entries: Vec<ObjectEntry>,
    /// Per parsed entry: kept, and whether its value becomes null.
    keep: Vec<(bool, bool)>,
    /// Per original entry: kept.
    keep_rec: Vec<bool>,
}

/// A run of adjacent byte ranges of one buffer, copied with one `extend_from_slice`.
#[derive(Default)]
struct Run(Option<Range<usize>>);

impl Run {
    fn add(&mut self, src: &[u8], r: Range<usize>, out: &mut Vec<u8>) {
        match &mut self.0 {
            Some(cur) if cur.end == r.start => cur.end = r.end,
            _ => {
                self.flush(src, out);
                self.0 = Some(r);
            }
        }
    }

    fn flush(&mut self, src: &[u8], out: &mut Vec<u8>) {
        if let Some(r) = self.0.take() {
            out.extend_from_slice(&src[r]);
        }
    }
}

impl ParserFilter {
    /// A filter whose unparsable records pass through (no `@ERROR` label to send them to).
    pub fn new(cfg: ParserFilterConfig) -> Self {
        Self::with_error_label(cfg, false)
    }

    /// `error_label`: the config has a `<label @ERROR>` (see the module docs).
    pub fn with_error_label(cfg: ParserFilterConfig, error_label: bool) -> Self {
        Self {
            time: TimeParser::new(&cfg.parse),
            null_pattern: cfg
                .parse
                .null_value_pattern
                .as_deref()
                .and_then(|p| Regex::new(p).ok()),
            to_error_label: error_label && cfg.emit_invalid_record_to_error,
            cfg,
            invalid: AtomicU64::new(0),
            warn: LogLimiter::new(WARN_BURST, WARN_INTERVAL),
        }
    }

    /// Records that could not be parsed since start.
    pub fn invalid_count(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }

    /// Parses `ev` and appends its new record to `out`; returns the new event time.
    fn parse_into(
        &self,
        ev: &Event,
        sc: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Result<EventTime, Failure> {
        let rec = &ev.record[..];
        let cfg = &self.cfg;
        sc.rec.clear();
        let (n, mut p) = map_header(rec).map_err(|_| Failure::NotAMap)?;
        let mut src = None;
        for _ in 0..n {
            let ke = skip_value(rec, p).map_err(|_| Failure::NotAMap)?;
            let ve = skip_value(rec, ke).map_err(|_| Failure::NotAMap)?;
            let text = read_str(rec, p).map(|(s, end)| end - s.len()..end);
            if src.is_none()
                && text
                    .clone()
                    .is_some_and(|t| &rec[t] == cfg.key_name.as_bytes())
            {
                src = Some(sc.rec.len());
            }
            sc.rec.push(RawEntry {
                key: p..ke,
                text,
                value: ke..ve,
            });
            p = ve;
        }
        let src = src.ok_or(Failure::Missing)?;
        let raw = read_str(rec, sc.rec[src].value.start)
            .map(|(s, _)| s)
            .ok_or(Failure::NotAString)?;
        // (The JSON parser checks UTF-8 itself; scrubbing is only asked for.)
        let text: Cow<'_, [u8]> =
            if cfg.replace_invalid_sequence && std::str::from_utf8(raw).is_err() {
                Cow::Owned(scrub(raw))
            } else {
                Cow::Borrowed(raw)
            };
        sc.parsed.clear();
        sc.entries.clear();
        object_entries(&text, &mut sc.parsed, &mut sc.entries).map_err(|e| match e {
            JsonError::NotObject => Failure::NotAnObject,
            e => Failure::NotJson(e),
        })?;
        let parsed = &sc.parsed;

        // Time, then nulls: decide per parsed entry.
        let mut time = ev.time;
        sc.keep.clear();
        sc.keep.resize(sc.entries.len(), (true, false));
        if let Some(tk) = &cfg.parse.time_key {
            if let Some(i) = sc
                .entries
                .iter()
                .position(|e| &parsed[e.key_text.clone()] == tk.as_bytes())
            {
                let t = self
                    .time
                    .parse(&parsed[sc.entries[i].value.clone()])
                    .map_err(Failure::BadTime)?;
                if !cfg.reserve_time {
                    time = t;
                }
                sc.keep[i].0 = cfg.parse.keep_time_key;
            }
        }
        if self.null_pattern.is_some() || cfg.parse.null_empty_string {
            for (e, k) in sc.entries.iter().zip(sc.keep.iter_mut()) {
                if let Some((s, _)) = read_str(parsed, e.value.start) {
                    let empty = cfg.parse.null_empty_string && s.is_empty();
                    let matches = self
                        .null_pattern
                        .as_ref()
                        .is_some_and(|re| std::str::from_utf8(s).is_ok_and(|s| re.is_match(s)));
                    k.1 = empty || matches;
                }
            }
        }

        // Which original entries stay (computed once: the key comparisons are the cost).
        let merged = cfg.hash_value_field.is_none() && cfg.inject_key_prefix.is_none();
        let kept_parsed = sc.keep.iter().filter(|k| k.0).count();
        sc.keep_rec.clear();
        for (i, e) in sc.rec.iter().enumerate() {
            let keep = cfg.reserve_data
                && match e.text.clone() {
                    None => true,
                    Some(t) => {
                        let key = &rec[t];
                        !(cfg.remove_key_name_field && i == src)
                            && cfg.hash_value_field.as_deref().map(str::as_bytes) != Some(key)
                            // A parsed key of the same name replaces the original.
                            && !(merged
                                && sc.entries.iter().zip(&sc.keep).any(|(p, k)| {
                                    k.0 && p.key_text.len() == key.len()
                                        && &parsed[p.key_text.clone()] == key
                                }))
                    }
                };
            sc.keep_rec.push(keep);
        }
        let kept_originals = sc.keep_rec.iter().filter(|k| **k).count();
        let n = kept_originals
            + if cfg.hash_value_field.is_some() {
                1
            } else {
                kept_parsed
            };
        record::write_map_len(out, n);
        // Key and value are adjacent in both buffers: copy runs of kept entries at once.
        let mut run = Run::default();
        for (e, keep) in sc.rec.iter().zip(&sc.keep_rec) {
            if *keep {
                run.add(rec, e.key.start..e.value.end, out);
            }
        }
        run.flush(rec, out);
        if let Some(f) = &cfg.hash_value_field {
            record::write_str(out, f.as_bytes());
            record::write_map_len(out, kept_parsed);
        }
        for (e, &(keep, null)) in sc.entries.iter().zip(&sc.keep) {
            if !keep {
                continue;
            }
            match (&cfg.inject_key_prefix, null) {
                (None, false) => run.add(parsed, e.key.start..e.value.end, out),
                (prefix, _) => {
                    run.flush(parsed, out);
                    match prefix {
                        Some(prefix) => {
                            let k = &parsed[e.key_text.clone()];
                            let len = (prefix.len() + k.len()) as u32;
                            let _ = rmp::encode::write_str_len(out, len);
                            out.extend_from_slice(prefix.as_bytes());
                            out.extend_from_slice(k);
                        }
                        None => out.extend_from_slice(&parsed[e.key.clone()]),
                    }
                    if null {
                        out.push(0xc0);
                    } else {
                        out.extend_from_slice(&parsed[e.value.clone()]);
                    }
                }
            }
        }
        run.flush(parsed, out);
        Ok(time)
    }

    /// Counts and logs one unparsable record.
    fn report(&self, tag: &str, ev: &Event, why: &Failure) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        // The fields are only evaluated when the limiter lets the line through.
        crate::warn_limited!(
            self.warn,
            tag,
            reason = %why.reason(),
            key_name = %self.cfg.key_name,
            example = %self.example(ev),
            "parser filter: record left unparsed"
        );
    }

    /// The start of the value that could not be parsed, for a log line.
    fn example(&self, ev: &Event) -> String {
        record::find_str(&ev.record, &self.cfg.key_name)
            .map(|v| {
                String::from_utf8_lossy(v)
                    .chars()
                    .take(EXAMPLE_CHARS)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `raw` with every invalid UTF-8 sequence replaced by `?` (Ruby's `scrub('?')`).
fn scrub(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.push(b'?');
        }
    }
    out
}

impl Filter for ParserFilter {
    fn filter(&self, tag: &str, events: Vec<Event>) -> Vec<Event> {
        let mut errors = Vec::new();
        let mut out = self.filter_with_errors(tag, events, &mut errors);
        // Called without an error sink: nothing may be lost.
        out.append(&mut errors);
        out
    }

    fn filter_with_errors(
        &self,
        tag: &str,
        events: Vec<Event>,
        errors: &mut Vec<Event>,
    ) -> Vec<Event> {
        let mut sc = Scratch::default();
        let capacity: usize = events.iter().map(|e| e.record.len() * 2).sum();
        let mut buf = Vec::with_capacity(capacity);
        // Per event: Ok((range of its new record in buf, time)) or the failure.
        let results: Vec<Result<(Range<usize>, EventTime), Failure>> = events
            .iter()
            .map(|ev| {
                let start = buf.len();
                match self.parse_into(ev, &mut sc, &mut buf) {
                    Ok(t) => Ok((start..buf.len(), t)),
                    Err(f) => {
                        buf.truncate(start);
                        Err(f)
                    }
                }
            })
            .collect();
        // One allocation for the batch's new records, each a slice of it (shrunk in place to
        // what they use: the buffer holds them as long as one of them lives).
        buf.shrink_to_fit();
        let all = Bytes::from(buf);
        let mut out = Vec::with_capacity(events.len());
        for (ev, r) in events.into_iter().zip(results) {
            match r {
                Ok((range, time)) => {
                    out.push(Event::with_metadata(time, all.slice(range), ev.metadata))
                }
                Err(why) => {
                    self.report(tag, &ev, &why);
                    if !self.to_error_label {
                        out.push(ev);
                        continue;
                    }
                    let fluentd_keeps = self.cfg.reserve_data
                        && matches!(why, Failure::Missing | Failure::NotAnObject);
                    if fluentd_keeps {
                        out.push(ev.clone());
                    }
                    errors.push(ev);
                }
            }
        }
        out
    }

    fn invalid_records(&self) -> u64 {
        self.invalid_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_each_invalid_sequence() {
        assert_eq!(scrub(b"a\xffb\xe3\x81c"), b"a?b?c");
        assert_eq!(scrub("é".as_bytes()), "é".as_bytes());
    }
}
