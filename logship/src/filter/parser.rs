//! `@type parser` with `<parse> @type json`: parses the string field `key_name` (default
//! `log`) as a JSON object.
//!
//! - `reserve_data false` (default): the record becomes the parsed object;
//!   `reserve_data true`: the original fields are kept and the parsed ones added (a parsed key
//!   replaces an original key of the same name); `remove_key_name_field true` drops the source
//!   field when parsing succeeded.
//! - `inject_key_prefix P`: parsed keys become `P<key>`; `hash_value_field F`: the parsed object
//!   is stored under `F` instead of being merged.
//! - time: when the parsed object has `time_key` (default `time`) holding an RFC 3339 string or
//!   a number of seconds, the event time becomes it and the key is removed (unless
//!   `keep_time_key true`); `reserve_time true` keeps the original event time.
//! - a value that is missing, not a string, not JSON or not an object: the record passes
//!   through unchanged, a WARN is logged and [`ParserFilter::invalid_count`] goes up
//!   (Fluentd's emit to `@ERROR` is not implemented).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::{Filter, FilterPlugin};
use crate::config::params::{ParamSpec, SectionSpec, NOT_IMPLEMENTED};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::{Event, EventTime};
use crate::output::timefmt;
use crate::pipeline::record::{self, Entry};

/// `@type parser`, checked.
#[derive(Debug, Clone)]
pub struct ParserFilterConfig {
    pub key_name: String,
    pub reserve_data: bool,
    pub reserve_time: bool,
    pub remove_key_name_field: bool,
    pub inject_key_prefix: Option<String>,
    pub hash_value_field: Option<String>,
    pub parse: ParseConfig,
}

/// `<parse>` (only `@type json`).
#[derive(Debug, Clone)]
pub struct ParseConfig {
    /// `None`: `time_key ""`, the event time is kept.
    pub time_key: Option<String>,
    pub keep_time_key: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self {
            time_key: Some("time".into()),
            keep_time_key: false,
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
    ParamSpec::bool("emit_invalid_record_to_error").default("true").no_effect("not implemented: a record that does not parse passes through unchanged, with a WARN and a counter"),
    ParamSpec::bool("replace_invalid_sequence").default("false").no_effect(NOT_IMPLEMENTED),
];

const TIMES: &str =
    "not implemented: a time is read from an RFC 3339 string or a number of seconds";

static PARSE: SectionSpec = SectionSpec::new(
    "parse",
    &[
        ParamSpec::choice("@type", &["json"]).required().doc("the parser: only `json`"),
        ParamSpec::string("time_key").default("time").doc("the parsed field that becomes the event time (RFC 3339 or seconds), then removed; `\"\"`: none"),
        ParamSpec::bool("keep_time_key").default("false").doc("keep `time_key` in the record"),
        ParamSpec::choice("json_parser", &["oj", "yajl", "json"]).default("oj").no_effect("logship has one JSON parser"),
        ParamSpec::choice("time_type", &["float", "unixtime", "string", "mixed"]).default("string").no_effect(TIMES),
        ParamSpec::string("time_format").no_effect(TIMES),
        ParamSpec::bool("utc").no_effect(TIMES),
        ParamSpec::bool("localtime").no_effect(TIMES),
        ParamSpec::string("timezone").no_effect(TIMES),
        ParamSpec::string("null_value_pattern").no_effect(NOT_IMPLEMENTED),
        ParamSpec::bool("null_empty_string").default("false").no_effect(NOT_IMPLEMENTED),
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
    ParseConfig {
        time_key: (!time_key.is_empty()).then_some(time_key),
        keep_time_key: s.get("keep_time_key"),
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

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub struct ParserFilter {
    cfg: ParserFilterConfig,
    invalid: AtomicU64,
}

impl ParserFilter {
    pub fn new(cfg: ParserFilterConfig) -> Self {
        Self {
            cfg,
            invalid: AtomicU64::new(0),
        }
    }

    /// Records that could not be parsed since start.
    pub fn invalid_count(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }

    fn parse_one(&self, ev: &Event) -> Result<Event, &'static str> {
        let entries = record::entries(&ev.record).map_err(|_| "record is not a msgpack map")?;
        let src = entries
            .iter()
            .find(|e| e.key == Some(self.cfg.key_name.as_bytes()))
            .ok_or("key_name field is missing")?;
        let text = src.value_str().ok_or("key_name field is not a string")?;
        let mut parsed = Vec::with_capacity(text.len());
        record::json_to_msgpack(text, &mut parsed).map_err(|_| "value is not valid JSON")?;
        let parsed_entries = record::entries(&parsed).map_err(|_| "value is not a JSON object")?;

        let mut time = ev.time;
        let mut skip_time_key = None;
        if let Some(tk) = &self.cfg.parse.time_key {
            if let Some(te) = parsed_entries.iter().find(|e| e.key == Some(tk.as_bytes())) {
                if let Some(t) = parse_time_value(te) {
                    if !self.cfg.reserve_time {
                        time = t;
                    }
                    if !self.cfg.parse.keep_time_key {
                        skip_time_key = Some(tk.as_bytes());
                    }
                }
            }
        }
        let parsed_kept: Vec<&Entry<'_>> = parsed_entries
            .iter()
            .filter(|e| skip_time_key.is_none() || e.key != skip_time_key)
            .collect();

        let mut out = Vec::with_capacity(ev.record.len() + parsed.len());
        let mut n = 0usize;
        let mut body = Vec::with_capacity(ev.record.len() + parsed.len());
        if self.cfg.reserve_data {
            for e in &entries {
                if self.cfg.remove_key_name_field && e.key == Some(self.cfg.key_name.as_bytes()) {
                    continue;
                }
                // A parsed key of the same name replaces the original (unless nested/prefixed).
                if self.cfg.hash_value_field.is_none()
                    && self.cfg.inject_key_prefix.is_none()
                    && parsed_kept.iter().any(|p| p.raw_key == e.raw_key)
                {
                    continue;
                }
                if self.cfg.hash_value_field.as_deref().map(str::as_bytes) == e.key {
                    continue;
                }
                body.extend_from_slice(e.raw_key);
                body.extend_from_slice(e.raw_value);
                n += 1;
            }
        }
        let mut parsed_body = Vec::with_capacity(parsed.len());
        for p in &parsed_kept {
            match (&self.cfg.inject_key_prefix, p.key) {
                (Some(prefix), Some(k)) => {
                    let mut nk = prefix.as_bytes().to_vec();
                    nk.extend_from_slice(k);
                    record::write_str(&mut parsed_body, &nk);
                }
                _ => parsed_body.extend_from_slice(p.raw_key),
            }
            parsed_body.extend_from_slice(p.raw_value);
        }
        match &self.cfg.hash_value_field {
            Some(f) => {
                record::write_str(&mut body, f.as_bytes());
                record::write_map_len(&mut body, parsed_kept.len());
                body.extend_from_slice(&parsed_body);
                n += 1;
            }
            None => {
                body.extend_from_slice(&parsed_body);
                n += parsed_kept.len();
            }
        }
        record::write_map_len(&mut out, n);
        out.extend_from_slice(&body);
        Ok(Event::with_metadata(
            time,
            Bytes::from(out),
            ev.metadata.clone(),
        ))
    }
}

fn parse_time_value(e: &Entry<'_>) -> Option<EventTime> {
    if let Some(s) = e.value_str() {
        let s = std::str::from_utf8(s).ok()?;
        if let Some(t) = timefmt::parse_rfc3339(s) {
            return Some(t);
        }
        return s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(EventTime::from_f64);
    }
    let mut rd = e.raw_value;
    let v = rmp::decode::read_f64(&mut rd).ok().or_else(|| {
        let mut rd = e.raw_value;
        rmp::decode::read_int::<i64, _>(&mut rd)
            .ok()
            .map(|i| i as f64)
    })?;
    v.is_finite().then(|| EventTime::from_f64(v))
}

impl Filter for ParserFilter {
    fn filter(&self, tag: &str, events: Vec<Event>) -> Vec<Event> {
        events
            .into_iter()
            .map(|ev| match self.parse_one(&ev) {
                Ok(e) => e,
                Err(reason) => {
                    self.invalid.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tag, reason, key_name = %self.cfg.key_name, "parser filter: record left unparsed");
                    ev
                }
            })
            .collect()
    }
}
