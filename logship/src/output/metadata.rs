//! How outputs carry an event's Forward protocol v1.5 metadata (see [`crate::event::Event`]).
//!
//! Metadata travels with every event in wire form; each output decides what to do with it:
//! - `forward` re-sends it as `[[time, metadata], record]` only with `send_metadata true`
//!   (receivers older than Fluentd 1.19 / Fluent Bit 5 reject that form);
//! - `elasticsearch` stores it in the document under `metadata_key` (off by default);
//! - `stdout` and `file` show it as one more member of the line's JSON object, under
//!   `metadata_key` (default `_metadata`; an empty value hides it).
//!
//! An empty map carries nothing (Fluent Bit 5 sends `{}` with every event), so only a
//! non-empty map is shown or stored. A record that already has the key keeps its own value,
//! the same rule as for `@timestamp` and the tag key.

use crate::config::params::ParamSpec;
use crate::config::section::Section;
use crate::event::Event;
use crate::msgpack_json::{write_json, write_json_str, TranscodeError};
use crate::pipeline::record;

/// Key under which stdout/file lines show an event's non-empty metadata (`metadata_key`).
pub const DEFAULT_LINE_METADATA_KEY: &str = "_metadata";

/// `metadata_key` of the stdout and file outputs.
pub const LINE_METADATA_KEY: ParamSpec = ParamSpec::string("metadata_key")
    .default(DEFAULT_LINE_METADATA_KEY)
    .doc("show an event's non-empty Forward v1.5 metadata in the line's JSON under this key; `\"\"` hides it");

/// Reads [`LINE_METADATA_KEY`]: `None` hides metadata.
pub fn line_metadata_key(s: &mut Section<'_, '_>) -> Option<String> {
    Some(s.get::<String>("metadata_key")).filter(|k| !k.is_empty())
}

/// The event's metadata when it is a non-empty map: what an output shows or stores.
pub fn shown(ev: &Event) -> Option<&[u8]> {
    let m = ev.metadata.as_deref()?;
    match record::map_header(m) {
        Ok((0, _)) | Err(_) => None,
        Ok(_) => Some(m),
    }
}

/// Appends `"key":<metadata as JSON>` as the last member of the JSON object that `out` ends
/// with (the one just transcoded from `record`), unless `record` has `key` itself.
pub fn append_member(
    out: &mut Vec<u8>,
    record: &[u8],
    key: &str,
    metadata: &[u8],
) -> Result<(), TranscodeError> {
    if !matches!(record::find(record, key), Ok(None)) || out.last() != Some(&b'}') {
        return Ok(());
    }
    let mark = out.len();
    out.pop();
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    write_json_str(out, key);
    out.push(b':');
    if let Err(e) = write_json(metadata, out) {
        out.truncate(mark - 1);
        out.push(b'}');
        return Err(e);
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventTime;
    use bytes::Bytes;

    fn mp(v: serde_json::Value) -> Bytes {
        Bytes::from(record::value_to_msgpack(&v))
    }

    fn line(record: serde_json::Value, meta: Option<serde_json::Value>) -> String {
        let ev = Event::with_metadata(EventTime::new(1, 0), mp(record), meta.map(mp));
        let mut out = Vec::new();
        write_json(&ev.record, &mut out).unwrap();
        if let Some(m) = shown(&ev) {
            append_member(&mut out, &ev.record, "_metadata", m).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn non_empty_metadata_becomes_the_last_member() {
        use serde_json::json;
        assert_eq!(
            line(
                json!({"log": "x"}),
                Some(json!({"stream": "stdout", "k8s": {"pod": "a"}}))
            ),
            // (serde_json's maps are sorted, hence k8s first)
            r#"{"log":"x","_metadata":{"k8s":{"pod":"a"},"stream":"stdout"}}"#
        );
        assert_eq!(
            line(json!({}), Some(json!({"a": 1}))),
            r#"{"_metadata":{"a":1}}"#
        );
        // an empty map or no metadata: the line is the record alone
        assert_eq!(line(json!({"log": "x"}), Some(json!({}))), r#"{"log":"x"}"#);
        assert_eq!(line(json!({"log": "x"}), None), r#"{"log":"x"}"#);
        // the record's own key wins
        assert_eq!(
            line(json!({"_metadata": 1}), Some(json!({"a": 1}))),
            r#"{"_metadata":1}"#
        );
    }
}
