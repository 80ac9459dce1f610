//! Which time a document carries, decided as fluent-plugin-elasticsearch decides it.
//!
//! `@timestamp` is written only with `logstash_format true` or `include_timestamp true`; then:
//!
//! 1. a record that has its own `@timestamp` keeps it, and that time (parsed) dates the
//!    logstash index;
//! 2. else, with `time_key K` and a record that has `K`: the parsed value of `K` dates the
//!    index and becomes `@timestamp` (unless `time_key_exclude_timestamp true`, which only
//!    dates the index); `K` stays in the document;
//! 3. else the event time dates the index and becomes `@timestamp`.
//!
//! Values are parsed with `time_key_format` (Ruby strptime syntax) when it is set, else as
//! ISO 8601 / RFC 3339 text; a number is Unix seconds either way. A value that does not parse
//! falls back to the event time (as Fluentd does) with a rate-limited WARN naming the value.
//! Without `@timestamp` (neither parameter) the event time dates `index_name`'s strftime
//! placeholders and nothing is added to the document.

use std::time::Duration;

use super::config::EsSettings;
use super::doc_id::{value_as_time, TimeValue};
use crate::event::EventTime;
use crate::log_limit::LogLimiter;
use crate::output::timefmt;

static UNPARSABLE_TIME: LogLimiter = LogLimiter::new(5, Duration::from_secs(60));

/// The time that names the document's index, and the `@timestamp` to add (if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocTime {
    pub index_time: EventTime,
    pub add_timestamp: Option<EventTime>,
}

/// Decides the [`DocTime`] of one event. `own_timestamp` and `time_key` are the byte ranges
/// of the record's `@timestamp` and `time_key` values, if present.
pub fn resolve(
    s: &EsSettings,
    tag: &str,
    record: &[u8],
    own_timestamp: Option<(usize, usize)>,
    time_key: Option<(usize, usize)>,
    event: EventTime,
) -> DocTime {
    if !s.writes_timestamp {
        return DocTime {
            index_time: event,
            add_timestamp: None,
        };
    }
    if let Some(r) = own_timestamp {
        return DocTime {
            index_time: parse(s, tag, "@timestamp", record, r).unwrap_or(event),
            add_timestamp: None,
        };
    }
    if let (Some(r), Some(key)) = (time_key, s.time_key.as_deref()) {
        let t = parse(s, tag, key, record, r).unwrap_or(event);
        return DocTime {
            index_time: t,
            add_timestamp: (!s.time_key_exclude_timestamp).then_some(t),
        };
    }
    DocTime {
        index_time: event,
        add_timestamp: Some(event),
    }
}

fn parse(
    s: &EsSettings,
    tag: &str,
    key: &str,
    record: &[u8],
    range: (usize, usize),
) -> Option<EventTime> {
    let value = value_as_time(record, range);
    let parsed = match (&value, s.time_key_format.as_deref()) {
        (Some(TimeValue::Seconds(v)), _) => timefmt::from_epoch_f64(*v),
        (Some(TimeValue::Text(t)), Some(f)) => timefmt::parse_strptime(t, f),
        (Some(TimeValue::Text(t)), None) => timefmt::parse_time_text(t),
        (None, _) => None,
    };
    if parsed.is_none() {
        let value = match &value {
            Some(TimeValue::Text(t)) => t.clone(),
            Some(TimeValue::Seconds(v)) => v.to_string(),
            None => "(not a string or number)".to_string(),
        };
        crate::warn_limited!(
            UNPARSABLE_TIME,
            tag,
            key,
            value,
            time_key_format = s.time_key_format.as_deref().unwrap_or("(ISO 8601)"),
            "elasticsearch: the record's time does not parse; the event time is used instead"
        );
    }
    parsed
}
