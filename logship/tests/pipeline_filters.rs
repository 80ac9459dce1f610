//! Filters: parser on bunyan lines, record_transformer placeholders, Docker partial
//! reassembly (with the captured `go_docker_partial` golden vector) and its timeout flush.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use logship::event::{Event, EventTime};
use logship::filter::concat::{ConcatConfig, ConcatFilter};
use logship::filter::parser::{ParserFilter, ParserFilterConfig};
use logship::filter::record_transformer::{RecordTransformer, RecordTransformerConfig};
use logship::filter::Filter;
use logship::msgpack_json::to_json_string;
use logship::pipeline::record::value_to_msgpack;
use serde_json::{json, Value};

fn ev(v: Value) -> Event {
    Event::new(
        EventTime::new(1_741_964_966, 0),
        Bytes::from(value_to_msgpack(&v)),
    )
}

fn js(e: &Event) -> Value {
    serde_json::from_str(&to_json_string(&e.record).unwrap()).unwrap()
}

fn parser_cfg(reserve_data: bool, remove: bool) -> ParserFilterConfig {
    ParserFilterConfig {
        reserve_data,
        remove_key_name_field: remove,
        ..ParserFilterConfig::default()
    }
}

const BUNYAN: &str = r#"{"name":"api","hostname":"web-1","pid":7,"level":30,"msg":"request finished","time":"2025-03-14T15:09:26.535Z","v":0,"req_id":"b7e2","status":200,"latency_ms":3.25,"nested":{"a":[1,2]}}"#;

#[test]
fn parser_merges_bunyan_lines() {
    let f = ParserFilter::new(parser_cfg(true, true));
    let out = f.filter(
        "docker.api",
        vec![ev(json!({"container_id": "abc", "container_name": "/api-1", "source": "stdout", "log": BUNYAN}))],
    );
    assert_eq!(out.len(), 1);
    let r = js(&out[0]);
    assert_eq!(r["container_name"], "/api-1");
    assert_eq!(r["msg"], "request finished");
    assert_eq!(r["level"], 30);
    assert_eq!(r["latency_ms"], 3.25);
    assert_eq!(r["nested"], json!({"a": [1, 2]}));
    assert!(r.get("log").is_none(), "remove_key_name_field");
    assert!(r.get("time").is_none(), "time_key consumed");
    // The event time comes from the bunyan time.
    assert_eq!(out[0].time, EventTime::new(1_741_964_966, 535_000_000));
    // Key order: kept originals first, then parsed keys in their order.
    // (json! sorts keys, so the input order is container_id, container_name, log, source.)
    let text = to_json_string(&out[0].record).unwrap();
    assert!(text.starts_with(r#"{"container_id":"abc","container_name":"/api-1","source":"stdout","name":"api","hostname":"web-1""#), "{text}");
    assert_eq!(f.invalid_count(), 0);
}

#[test]
fn parser_without_reserve_data_keeps_only_parsed_fields() {
    let f = ParserFilter::new(parser_cfg(false, false));
    let out = f.filter(
        "t",
        vec![ev(json!({"source": "stdout", "log": r#"{"a":1,"b":"x"}"#}))],
    );
    assert_eq!(js(&out[0]), json!({"a": 1, "b": "x"}));
}

#[test]
fn parser_leaves_invalid_records_unchanged_and_counts_them() {
    let f = ParserFilter::new(parser_cfg(true, true));
    let inputs = vec![
        ev(json!({"log": "plain text, not JSON"})),
        ev(json!({"log": "{\"truncated\": "})),
        ev(json!({"log": "[1,2,3]"})),
        ev(json!({"log": 42})),
        ev(json!({"other": "no log key"})),
    ];
    let before: Vec<Bytes> = inputs.iter().map(|e| e.record.clone()).collect();
    let out = f.filter("t", inputs);
    let after: Vec<Bytes> = out.iter().map(|e| e.record.clone()).collect();
    assert_eq!(before, after);
    assert_eq!(f.invalid_count(), 5);
}

#[test]
fn parser_prefix_and_hash_value_field() {
    let mut c = parser_cfg(true, false);
    c.inject_key_prefix = Some("p_".into());
    let out = ParserFilter::new(c).filter("t", vec![ev(json!({"log": r#"{"a":1}"#}))]);
    assert_eq!(js(&out[0]), json!({"log": r#"{"a":1}"#, "p_a": 1}));
    let mut c = parser_cfg(true, true);
    c.hash_value_field = Some("parsed".into());
    let out = ParserFilter::new(c).filter("t", vec![ev(json!({"k": "v", "log": r#"{"a":1}"#}))]);
    assert_eq!(js(&out[0]), json!({"k": "v", "parsed": {"a": 1}}));
}

#[test]
fn record_transformer_placeholders_and_removal() {
    let cfg = RecordTransformerConfig {
        record: vec![
            ("host".into(), "${hostname}".into()),
            ("service".into(), "${tag_parts[1]}".into()),
            ("last".into(), "${tag_parts[-1]}".into()),
            ("prefix".into(), "${tag_prefix[1]}".into()),
            ("suffix".into(), "${tag_suffix[1]}".into()),
            ("full".into(), "tag=${tag}".into()),
            ("copy_of_n".into(), "${n}".into()),
            ("msg".into(), "src=${record[\"source\"]} n=${n}".into()),
            ("source".into(), "overwritten".into()),
        ],
        remove_keys: vec!["secret".into()],
        keep_keys: vec![],
        renew_record: false,
        auto_typecast: true,
    };
    let f = RecordTransformer::with_hostname(&cfg, "box-1".into());
    let out = f.filter(
        "docker.api.web",
        vec![ev(json!({"source": "stdout", "n": 5, "secret": "x"}))],
    );
    assert_eq!(
        to_json_string(&out[0].record).unwrap(),
        r#"{"n":5,"source":"overwritten","host":"box-1","service":"api","last":"web","prefix":"docker.api","suffix":"api.web","full":"tag=docker.api.web","copy_of_n":5,"msg":"src=stdout n=5"}"#
    );
    let renew = RecordTransformerConfig {
        record: vec![("t".into(), "${tag}".into())],
        remove_keys: vec![],
        keep_keys: vec!["n".into()],
        renew_record: true,
        auto_typecast: false,
    };
    let out = RecordTransformer::with_hostname(&renew, "h".into())
        .filter("a", vec![ev(json!({"source": "x", "n": 1}))]);
    assert_eq!(
        to_json_string(&out[0].record).unwrap(),
        r#"{"n":1,"t":"a"}"#
    );
}

/// Fluentd's `auto_typecast`: without it (the default) a lone `${field}` becomes a string.
#[test]
fn record_transformer_auto_typecast() {
    let cfg = |auto_typecast| RecordTransformerConfig {
        record: vec![
            ("n2".into(), "${n}".into()),
            ("ok2".into(), "${ok}".into()),
            ("s2".into(), "${s}".into()),
        ],
        remove_keys: vec![],
        keep_keys: vec![],
        renew_record: true,
        auto_typecast,
    };
    let input = || vec![ev(json!({"n": 5, "ok": true, "s": "x"}))];
    let out = RecordTransformer::with_hostname(&cfg(false), "h".into()).filter("a", input());
    assert_eq!(js(&out[0]), json!({"n2": "5", "ok2": "true", "s2": "x"}));
    let out = RecordTransformer::with_hostname(&cfg(true), "h".into()).filter("a", input());
    assert_eq!(js(&out[0]), json!({"n2": 5, "ok2": true, "s2": "x"}));
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/forward")
}

/// Decodes a stream of Message-mode objects `[tag, time, record, option?]` with rmpv.
fn decode_messages(bin: &[u8]) -> Vec<(String, Event)> {
    let mut cur = std::io::Cursor::new(bin);
    let mut out = Vec::new();
    while (cur.position() as usize) < bin.len() {
        let v = rmpv::decode::read_value(&mut cur).unwrap();
        let a = v.as_array().unwrap();
        let tag = a[0].as_str().unwrap().to_string();
        let secs = a[1].as_i64().unwrap();
        let mut rec = Vec::new();
        rmpv::encode::write_value(&mut rec, &a[2]).unwrap();
        out.push((tag, Event::new(EventTime::new(secs, 0), Bytes::from(rec))));
    }
    out
}

fn concat_cfg(flush: Duration) -> ConcatConfig {
    ConcatConfig {
        key: "log".into(),
        separator: String::new(),
        flush_interval: flush,
        keep_partial_metadata: false,
        use_first_timestamp: false,
        stream_identity_key: None,
        timeout_label: None,
    }
}

#[test]
fn concat_joins_the_golden_docker_partial_vector() {
    let bin = std::fs::read(vectors().join("go_docker_partial.bin")).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(vectors().join("go_docker_partial.json")).unwrap())
            .unwrap();
    let msgs = decode_messages(&bin);
    assert_eq!(msgs.len(), 4);
    let tag = msgs[0].0.clone();
    let pieces: Vec<String> = expected["events"].as_array().unwrap()[1..3]
        .iter()
        .map(|e| e["record"]["log"].as_str().unwrap().to_string())
        .collect();
    let f = ConcatFilter::new(concat_cfg(Duration::from_secs(60)));
    // Feed one event per call, as separate Forward messages would arrive.
    let mut out = Vec::new();
    for (t, e) in msgs {
        out.extend(f.filter(&t, vec![e]));
    }
    assert_eq!(out.len(), 3);
    assert_eq!(f.pending_groups(), 0);
    let mid = js(&out[1]);
    let log = mid["log"].as_str().unwrap();
    assert_eq!(log.len(), 20480);
    assert_eq!(log, pieces.concat());
    for k in [
        "partial_message",
        "partial_id",
        "partial_ordinal",
        "partial_last",
    ] {
        assert!(mid.get(k).is_none(), "{k} must be removed");
    }
    assert_eq!(mid["container_name"], "/web-1");
    assert_eq!(mid["source"], "stdout");
    assert_eq!(js(&out[0])["log"], "line before the long one");
    assert_eq!(js(&out[2])["log"], "line after the long one");
    assert!(f.flush(true).is_empty());
    let _ = tag;
}

#[test]
fn concat_handles_out_of_order_pieces_and_interleaved_ids() {
    let p = |id: &str, ord: u32, last: bool, log: &str| {
        ev(
            json!({"log": log, "partial_message": "true", "partial_id": id, "partial_ordinal": ord.to_string(), "partial_last": if last {"true"} else {"false"}}),
        )
    };
    let f = ConcatFilter::new(concat_cfg(Duration::from_secs(60)));
    let out = f.filter(
        "t",
        vec![
            p("A", 2, true, "a2"),
            p("B", 1, false, "b1"),
            p("A", 1, false, "a1"),
            ev(json!({"log": "plain"})),
            p("B", 2, true, "b2"),
        ],
    );
    let logs: Vec<String> = out
        .iter()
        .map(|e| js(e)["log"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logs, vec!["a1a2", "plain", "b1b2"]);
}

#[test]
fn concat_flushes_incomplete_groups_after_the_timeout() {
    let f = ConcatFilter::new(concat_cfg(Duration::from_millis(50)));
    let first = ev(
        json!({"log": "part-1 ", "source": "stderr", "partial_message": "true", "partial_id": "X", "partial_ordinal": "1", "partial_last": "false"}),
    );
    assert!(f.filter("docker.x", vec![first]).is_empty());
    assert!(f.flush(false).is_empty(), "not expired yet");
    std::thread::sleep(Duration::from_millis(80));
    let flushed = f.flush(false);
    assert_eq!(flushed.len(), 1);
    assert_eq!(&*flushed[0].tag, "docker.x");
    assert_eq!(
        js(&flushed[0].events[0]),
        json!({"log": "part-1 ", "source": "stderr"})
    );
    assert_eq!(f.pending_groups(), 0);
}

fn with_parse(f: impl FnOnce(&mut logship::filter::parser::ParseConfig)) -> ParserFilter {
    let mut c = parser_cfg(true, true);
    f(&mut c.parse);
    ParserFilter::new(c)
}

/// `<parse>` time_key / time_format (with %N and %z) / time_type / keep_time_key / timezone.
#[test]
fn parse_time_parameters() {
    use logship::filter::parser::{ParseZone, TimeType};
    let one = |f: &ParserFilter, log: &str| {
        let out = f.filter("t", vec![ev(json!({ "log": log }))]);
        (out[0].time, js(&out[0]), f.invalid_count())
    };
    // time_key + time_format with nanoseconds and an offset
    let f = with_parse(|p| {
        p.time_key = Some("ts".into());
        p.time_type = TimeType::String;
        p.time_format = Some("%Y-%m-%d %H:%M:%S.%N %z".into());
    });
    let (t, r, bad) = one(&f, r#"{"ts":"2025-03-14 16:09:26.535897932 +01:00","m":1}"#);
    assert_eq!((t, bad), (EventTime::new(1_741_964_966, 535_897_932), 0));
    assert_eq!(r, json!({"m": 1}), "time key removed");
    // keep_time_key
    let f = with_parse(|p| {
        p.keep_time_key = true;
        p.time_type = TimeType::Unixtime;
    });
    let (t, r, _) = one(&f, r#"{"time":"1741964966","m":1}"#);
    assert_eq!(t, EventTime::new(1_741_964_966, 0));
    assert_eq!(r, json!({"time": "1741964966", "m": 1}));
    // time_type float keeps nanoseconds
    let f = with_parse(|p| p.time_type = TimeType::Float);
    let (t, _, _) = one(&f, r#"{"time":1741964966.5}"#);
    assert_eq!(t, EventTime::new(1_741_964_966, 500_000_000));
    // timezone applies to a format without %z
    let f = with_parse(|p| {
        p.time_type = TimeType::String;
        p.time_format = Some("%d/%b/%Y:%H:%M:%S".into());
        p.zone = ParseZone::Fixed(9 * 3600);
    });
    let (t, _, _) = one(&f, r#"{"time":"15/Mar/2025:00:09:26"}"#);
    assert_eq!(t, EventTime::new(1_741_964_966, 0));
    // a time that cannot be read makes the record unparsable (left unchanged, counted)
    let (t, r, bad) = one(&f, r#"{"time":"yesterday","m":1}"#);
    assert_eq!((t, bad), (EventTime::new(1_741_964_966, 0), 1));
    assert_eq!(r, json!({"log": r#"{"time":"yesterday","m":1}"#}));
}

/// `<parse>` null_value_pattern / null_empty_string, and `replace_invalid_sequence`.
#[test]
fn parse_null_values_and_invalid_sequences() {
    let f = with_parse(|p| {
        p.null_value_pattern = Some("^(-|null|NULL)$".into());
        p.null_empty_string = true;
    });
    let out = f.filter(
        "t",
        vec![ev(
            json!({"log": r#"{"a":"-","b":"","c":"x-y","d":{"e":""},"f":"NULL"}"#}),
        )],
    );
    assert_eq!(
        js(&out[0]),
        json!({"a": null, "b": null, "c": "x-y", "d": {"e": ""}, "f": null})
    );
    // Invalid UTF-8 inside the JSON text: unparsable, unless replace_invalid_sequence.
    let mut rec = Vec::new();
    rmp::encode::write_map_len(&mut rec, 1).unwrap();
    rmp::encode::write_str(&mut rec, "log").unwrap();
    let text = b"{\"m\":\"caf\xe9\"}";
    rmp::encode::write_str_len(&mut rec, text.len() as u32).unwrap();
    rec.extend_from_slice(text);
    let raw = Event::new(EventTime::new(1, 0), Bytes::from(rec));
    let strict = ParserFilter::new(parser_cfg(true, true));
    let out = strict.filter("t", vec![raw.clone()]);
    assert_eq!(
        (out[0].record.clone(), strict.invalid_count()),
        (raw.record.clone(), 1)
    );
    let mut c = parser_cfg(true, true);
    c.replace_invalid_sequence = true;
    let lenient = ParserFilter::new(c);
    let out = lenient.filter("t", vec![raw]);
    assert_eq!(js(&out[0]), json!({"m": "caf?"}));
    assert_eq!(lenient.invalid_count(), 0);
}
