//! Events → `_bulk` NDJSON bodies, transcoded straight from the msgpack records.
//!
//! For each event two lines are written:
//! `{"create":{"_index":"INDEX","_id":"ID"}}` and the record as JSON with, in front,
//! `@timestamp` (RFC 3339, UTC, nanoseconds; only with `logstash_format` or
//! `include_timestamp`, see [`super::doc_time`]) and, with `include_tag_key`, the tag —
//! unless the record already has that key, which then wins. With `target_index_key`, the
//! record's value at that (dotted) path is the index and the key is left out of the document. With `metadata_key`, an event's non-empty
//! Forward v1.5 metadata is the document's last member under that key (see
//! [`crate::output::metadata`]). The record's own JSON comes from
//! [`crate::msgpack_json::write_json`]; its opening `{` is spliced onto the added fields, so
//! nothing is decoded into a value tree.

use super::config::EsSettings;
use super::{doc_id, doc_time};
use crate::event::{Event, EventTime};
use crate::msgpack_json::{write_json, write_json_str};
use crate::output::metadata;

/// Where an item of a bulk body came from: (batch index, event index) in the chunk.
pub type ItemRef = (usize, usize);

/// One `_bulk` request body and the events it holds, in order.
#[derive(Debug, Default)]
pub struct BulkBody {
    pub body: Vec<u8>,
    pub items: Vec<ItemRef>,
}

/// An event that cannot be sent (its record is not a msgpack map).
#[derive(Debug)]
pub struct Unencodable {
    pub item: ItemRef,
    pub reason: String,
}

/// `2025-03-14T15:09:26.535897932Z` (kept here too: the bulk encoder is where `@timestamp` is made).
pub use crate::output::timefmt::write_rfc3339_nanos;

/// Builds bulk bodies, splitting when one would exceed the threshold.
pub struct Encoder<'s> {
    settings: &'s EsSettings,
    last_index: Option<(String, i64, String)>,
    pub bodies: Vec<BulkBody>,
    pub rejected: Vec<Unencodable>,
    ids: doc_id::DocIds,
}

impl<'s> Encoder<'s> {
    pub fn new(settings: &'s EsSettings) -> Self {
        Self {
            settings,
            last_index: None,
            bodies: vec![BulkBody::default()],
            rejected: Vec::new(),
            ids: doc_id::DocIds::default(),
        }
    }

    fn index(&mut self, tag: &str, secs: i64) -> String {
        if let Some((t, s, i)) = &self.last_index {
            if t == tag && *s == secs {
                return i.clone();
            }
        }
        let i = self.settings.index_for(tag, EventTime::new(secs, 0));
        self.last_index = Some((tag.to_string(), secs, i.clone()));
        i
    }

    /// Appends one event; true once the current body reached `bulk_message_request_threshold`
    /// (the next event starts a new body).
    pub fn push(&mut self, item: ItemRef, tag: &str, ev: &Event) -> bool {
        let s = self.settings;
        let rec = &ev.record[..];
        let found = match doc_id::find_keys(
            rec,
            [
                Some("@timestamp"),
                if s.include_tag_key {
                    Some(s.tag_key.as_str())
                } else {
                    None
                },
                s.id_key.as_deref(),
                s.time_key.as_deref(),
            ],
        ) {
            Ok(f) => f,
            Err(_) => return self.reject(item, "the record is not a well-formed msgpack map"),
        };
        let time = doc_time::resolve(s, tag, rec, found[0], found[3], ev.time);
        // target_index_key: the record names its index, and the key leaves the document.
        let target = match &s.target_index_path {
            Some(path) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                match doc_id::take_path(rec, &path) {
                    Ok(t) => t,
                    Err(_) => return self.reject(item, "the record is not well-formed msgpack"),
                }
            }
            None => None,
        };
        let (index, doc_rec) = match &target {
            Some((name, rest)) => (name.to_lowercase(), &rest[..]),
            None => (self.index(tag, time.index_time.secs), rec),
        };
        let body = self.bodies.last_mut().expect("at least one body");
        if body.body.capacity() == 0 {
            // The body stops growing at the threshold (plus the event that crosses it): reserve
            // that at once rather than doubling past it (pages not written are not resident).
            body.body
                .reserve(s.bulk_threshold.min(64 << 20) + 64 * 1024);
        }
        let mark = body.body.len();
        let out = &mut body.body;
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(s.write_operation.as_str().as_bytes());
        out.extend_from_slice(b"\":{\"_index\":");
        write_json_str(out, &index);
        out.extend_from_slice(b",\"_id\":");
        match found[2].and_then(|r| doc_id::value_as_string(rec, r)) {
            Some(id) => write_json_str(out, &id),
            None => {
                out.push(b'"');
                if self.ids.write(out, tag, ev.time, rec).is_err() {
                    out.truncate(mark);
                    return self.reject(item, "the record is not well-formed msgpack");
                }
                out.push(b'"');
            }
        }
        out.extend_from_slice(b"}}\n");
        let mut opened = false;
        out.push(b'{');
        if let Some(t) = time.add_timestamp {
            out.extend_from_slice(b"\"@timestamp\":\"");
            write_rfc3339_nanos(out, t);
            out.push(b'"');
            opened = true;
        }
        if s.include_tag_key && found[1].is_none() {
            if opened {
                out.push(b',');
            }
            write_json_str(out, &s.tag_key);
            out.push(b':');
            write_json_str(out, tag);
            opened = true;
        }
        let rec_at = out.len();
        if write_json(doc_rec, out).is_err() {
            out.truncate(mark);
            return self.reject(item, "the record is not well-formed msgpack");
        }
        // out[rec_at] is the record's '{': drop it, joining with ',' when needed.
        let empty = out.get(rec_at + 1) == Some(&b'}');
        if !opened {
            out.remove(rec_at);
        } else if empty {
            out.truncate(rec_at);
            out.push(b'}');
        } else {
            out[rec_at] = b',';
        }
        if let (Some(key), Some(m)) = (&s.metadata_key, metadata::shown(ev)) {
            if metadata::append_member(out, doc_rec, key, m).is_err() {
                out.truncate(mark);
                return self.reject(item, "the event's metadata is not well-formed msgpack");
            }
        }
        out.push(b'\n');
        let len = out.len();
        body.items.push(item);
        if len >= s.bulk_threshold {
            self.bodies.push(BulkBody::default());
            return true;
        }
        false
    }

    /// Sets `item` aside as unencodable; `false` (no body was completed), for `push`.
    fn reject(&mut self, item: ItemRef, reason: &str) -> bool {
        self.rejected.push(Unencodable {
            item,
            reason: reason.into(),
        });
        false
    }

    /// The non-empty bodies.
    pub fn finish(mut self) -> (Vec<BulkBody>, Vec<Unencodable>) {
        self.bodies.retain(|b| !b.items.is_empty());
        (self.bodies, self.rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use bytes::Bytes;

    fn settings(extra: &str) -> EsSettings {
        let cfg = Config::from_str_at(
            &format!("<match **>\n@type elasticsearch\n{extra}\n</match>"),
            std::path::Path::new("t.conf"),
        )
        .unwrap();
        let crate::config::Directive::Match(m) = &cfg.root.directives[0] else {
            panic!()
        };
        EsSettings::from_config(m.config::<super::super::ElasticsearchConfig>().unwrap()).unwrap()
    }

    fn ev(v: serde_json::Value) -> Event {
        Event::new(
            EventTime::new(1_700_000_000, 123),
            crate::forward::client::encode_record_from_json(&v),
        )
    }

    #[test]
    fn metadata_key_stores_non_empty_metadata() {
        let meta = |v: serde_json::Value| Some(crate::forward::client::encode_record_from_json(&v));
        let with_meta = |m| {
            Event::with_metadata(
                ev(serde_json::json!({"msg": "hi"})).time,
                ev(serde_json::json!({"msg": "hi"})).record,
                m,
            )
        };
        let docs = |s: &EsSettings| {
            let mut e = Encoder::new(s);
            e.push(
                (0, 0),
                "t",
                &with_meta(meta(
                    serde_json::json!({"stream": "stdout", "k8s": {"pod": "a"}}),
                )),
            );
            e.push((0, 1), "t", &with_meta(meta(serde_json::json!({}))));
            e.push((0, 2), "t", &with_meta(None));
            let (bodies, rejected) = e.finish();
            assert!(rejected.is_empty());
            String::from_utf8(bodies[0].body.clone())
                .unwrap()
                .lines()
                .skip(1)
                .step_by(2)
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        };
        let on = docs(&settings("metadata_key fluent_meta"));
        assert_eq!(
            on[0]["fluent_meta"],
            serde_json::json!({"stream": "stdout", "k8s": {"pod": "a"}})
        );
        assert_eq!(on[0]["msg"], "hi");
        assert!(
            on[1].get("fluent_meta").is_none(),
            "empty metadata is not stored"
        );
        assert!(on[2].get("fluent_meta").is_none());
        // off by default (and without logstash_format/include_timestamp no @timestamp either)
        let off = docs(&settings(""));
        assert!(off
            .iter()
            .all(|d| d.get("fluent_meta").is_none() && d.as_object().unwrap().len() == 1));
    }

    /// (action line, document) pairs of one pushed event per record.
    fn encode(
        conf: &str,
        records: &[serde_json::Value],
    ) -> Vec<(serde_json::Value, serde_json::Value)> {
        let s = settings(conf);
        let mut e = Encoder::new(&s);
        for (i, r) in records.iter().enumerate() {
            e.push((0, i), "app.web", &ev(r.clone()));
        }
        let (bodies, rejected) = e.finish();
        assert!(rejected.is_empty());
        let text = String::from_utf8(bodies[0].body.clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        lines
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect()
    }

    #[test]
    fn timestamp_only_with_logstash_format_or_include_timestamp() {
        use serde_json::json;
        let r = [json!({"msg": "m"})];
        assert!(encode("index_name x", &r)[0].1.get("@timestamp").is_none());
        let d = &encode("index_name x\ninclude_timestamp true", &r)[0];
        assert_eq!(d.1["@timestamp"], "2023-11-14T22:13:20.000000123Z");
        assert_eq!(d.0["create"]["_index"], "x");
    }

    #[test]
    fn time_key_dates_the_index_and_becomes_the_timestamp() {
        use serde_json::json;
        let conf =
            "logstash_format true\nlogstash_prefix logs\nlogstash_dateformat %Y.%m.%d\ntime_key ts";
        let docs = encode(
            conf,
            &[
                json!({"ts": "2024-02-29T23:59:59.5+01:00", "msg": "a"}),
                json!({"ts": 1_700_000_000.25, "msg": "b"}),
                json!({"ts": "not a time", "msg": "c"}),
                json!({"@timestamp": "2020-01-01T00:00:00Z", "ts": "2024-01-01T00:00:00Z"}),
                json!({"msg": "no ts"}),
            ],
        );
        assert_eq!(docs[0].0["create"]["_index"], "logs-2024.02.29");
        assert_eq!(docs[0].1["@timestamp"], "2024-02-29T22:59:59.500000000Z");
        assert_eq!(
            docs[0].1["ts"], "2024-02-29T23:59:59.5+01:00",
            "time_key stays"
        );
        assert_eq!(docs[1].1["@timestamp"], "2023-11-14T22:13:20.250000000Z");
        // unparsable: the event time, as Fluentd falls back
        assert_eq!(docs[2].1["@timestamp"], "2023-11-14T22:13:20.000000123Z");
        // the record's own @timestamp wins and dates the index
        assert_eq!(docs[3].0["create"]["_index"], "logs-2020.01.01");
        assert_eq!(docs[3].1["@timestamp"], "2020-01-01T00:00:00Z");
        assert_eq!(docs[4].1["@timestamp"], "2023-11-14T22:13:20.000000123Z");

        let excl = encode(
            &format!("{conf}\ntime_key_exclude_timestamp true\ntime_key_format %d/%m/%Y %H:%M"),
            &[json!({"ts": "01/03/2024 10:00"})],
        );
        assert_eq!(excl[0].0["create"]["_index"], "logs-2024.03.01");
        assert!(excl[0].1.get("@timestamp").is_none());
    }

    #[test]
    fn target_index_key_names_the_index_and_leaves_the_document() {
        use serde_json::json;
        let docs = encode(
            "logstash_format true\nlogstash_prefix logs\ntarget_index_key k8s.ns",
            &[
                json!({"k8s": {"ns": "Billing", "pod": "p"}, "msg": "a"}),
                json!({"k8s": {"pod": "p"}, "msg": "b"}),
            ],
        );
        assert_eq!(docs[0].0["create"]["_index"], "billing");
        assert_eq!(docs[0].1["k8s"], json!({"pod": "p"}));
        assert_eq!(docs[1].0["create"]["_index"], "logs-2023.11.14");
        // the _id is the hash of the record as received
        assert_ne!(docs[0].0["create"]["_id"], docs[1].0["create"]["_id"]);
    }

    #[test]
    fn bulk_lines() {
        let s = settings("logstash_format true\nlogstash_prefix fluentd\nlogstash_dateformat %Y%m%d\ninclude_tag_key true");
        let mut e = Encoder::new(&s);
        e.push(
            (0, 0),
            "docker.api",
            &ev(serde_json::json!({"msg":"hi","level":30})),
        );
        e.push((0, 1), "docker.api", &ev(serde_json::json!({})));
        e.push(
            (0, 2),
            "docker.api",
            &ev(serde_json::json!({"@timestamp":"x"})),
        );
        e.push(
            (0, 3),
            "docker.api",
            &Event::new(EventTime::new(0, 0), Bytes::from_static(&[0x91, 0x01])),
        );
        let (bodies, rejected) = e.finish();
        assert_eq!(rejected.len(), 1);
        let text = String::from_utf8(bodies[0].body.clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0]["create"]["_index"], "fluentd-20231114");
        assert_eq!(lines[0]["create"]["_id"].as_str().unwrap().len(), 32);
        assert_eq!(lines[1]["@timestamp"], "2023-11-14T22:13:20.000000123Z");
        assert_eq!(lines[1]["tag"], "docker.api");
        assert_eq!(lines[1]["level"], 30);
        assert_eq!(lines[3]["tag"], "docker.api");
        assert_eq!(lines[5]["@timestamp"], "x");
        assert_eq!(lines[5]["tag"], "docker.api");
    }

    #[test]
    fn index_name_placeholders_id_key_and_split() {
        let s = settings("index_name logs.${tag}.%Y\nid_key rid\nwrite_operation index\nbulk_message_request_threshold 10");
        let mut e = Encoder::new(&s);
        e.push((0, 0), "App", &ev(serde_json::json!({"rid":"abc"})));
        e.push((0, 1), "App", &ev(serde_json::json!({"rid":"abd"})));
        let (bodies, _) = e.finish();
        assert_eq!(bodies.len(), 2);
        let l: serde_json::Value =
            serde_json::from_slice(bodies[0].body.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(l["index"]["_index"], "logs.app.2023");
        assert_eq!(l["index"]["_id"], "abc");
    }
}
