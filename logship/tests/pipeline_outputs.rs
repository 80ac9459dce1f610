//! Output formats (stdout's exact Fluentd line, JSON lines, out_file lines, file paths) and the
//! msgpack → JSON transcoder.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use logship::config::{Config, Directive};
use logship::event::{Event, EventBatch, EventTime};
use logship::msgpack_json::{to_json_string, write_json, TranscodeError};
use logship::output::file::{FileOutput, FileOutputConfig};
use logship::output::metadata::DEFAULT_LINE_METADATA_KEY;
use logship::output::stdout::{StdoutConfig, StdoutOutput};
use logship::output::{LineFormat, Output, OutputPlugin};
use logship::pipeline::record::value_to_msgpack;
use serde_json::json;

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn batch() -> EventBatch {
    EventBatch::new(
        "docker.api",
        vec![
            Event::new(
                EventTime::new(1_741_964_966, 535_897_932),
                Bytes::from(value_to_msgpack(
                    &json!({"log": "hello \"world\"\n", "n": 1}),
                )),
            ),
            Event::new(
                EventTime::new(1_741_964_967, 5),
                Bytes::from(value_to_msgpack(&json!({"a": [1, null, true]}))),
            ),
        ],
    )
}

fn stdout_cfg(format: LineFormat) -> StdoutConfig {
    StdoutConfig {
        format,
        metadata_key: Some(DEFAULT_LINE_METADATA_KEY.into()),
    }
}

/// The output config of `<match **> @type TYPE BODY </match>`.
fn output_config(body: &str) -> Arc<dyn OutputPlugin> {
    let cfg = Config::from_str_at(
        &format!("<match **>\n{body}\n</match>\n"),
        std::path::Path::new("t.conf"),
    )
    .unwrap();
    let Directive::Match(m) = &cfg.root.directives[0] else {
        panic!("not a match")
    };
    m.plugin.clone()
}

/// A batch of Fluent Bit 5-style events: non-empty metadata, an empty map, none.
fn batch_with_metadata() -> EventBatch {
    let rec = || Bytes::from(value_to_msgpack(&json!({"log": "x"})));
    let t = EventTime::new(1_741_964_966, 535_897_932);
    EventBatch::new(
        "app.api",
        vec![
            Event::with_metadata(
                t,
                rec(),
                Some(Bytes::from(value_to_msgpack(
                    &json!({"stream": "stdout", "k8s": {"pod": "api-1"}}),
                ))),
            ),
            Event::with_metadata(t, rec(), Some(Bytes::from_static(&[0x80]))),
            Event::new(t, rec()),
        ],
    )
}

#[tokio::test]
async fn stdout_and_file_show_non_empty_metadata() {
    let shown = "{\"log\":\"x\",\"_metadata\":{\"k8s\":{\"pod\":\"api-1\"},\"stream\":\"stdout\"}}";
    let plain = "{\"log\":\"x\"}";
    for (body, first) in [
        (
            "@type stdout",
            format!("2025-03-14 15:09:26.535897932 +0000 app.api: {shown}"),
        ),
        (
            "@type stdout\n<format>\n@type json\n</format>",
            shown.to_string(),
        ),
        (
            "@type stdout\nmetadata_key fluent\n<format>\n@type json\n</format>",
            shown.replace("_metadata", "fluent"),
        ),
        (
            "@type stdout\nmetadata_key \"\"\n<format>\n@type json\n</format>",
            plain.to_string(),
        ),
    ] {
        let plugin = output_config(body);
        let cfg: &StdoutConfig = plugin.as_any().downcast_ref().expect(body);
        let buf = Shared::default();
        let out = StdoutOutput::with_writer(cfg, Box::new(buf.clone()));
        out.emit(&batch_with_metadata()).await.unwrap();
        out.shutdown().await;
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], first, "{body}");
        assert!(
            lines[1].ends_with(plain) && lines[2].ends_with(plain),
            "{body}: {text}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = output_config(&format!(
        "@type file\npath {}/out\n<format>\n@type json\n</format>",
        dir.path().display()
    ));
    let cfg: &FileOutputConfig = plugin.as_any().downcast_ref().unwrap();
    FileOutput::new(cfg)
        .emit(&batch_with_metadata())
        .await
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    assert_eq!(text, format!("{shown}\n{plain}\n{plain}\n"));
}

#[tokio::test]
async fn stdout_uses_fluentds_line_format() {
    let buf = Shared::default();
    let out = StdoutOutput::with_writer(&stdout_cfg(LineFormat::Stdout), Box::new(buf.clone()));
    out.emit(&batch()).await.unwrap();
    out.shutdown().await;
    assert_eq!(
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap(),
        "2025-03-14 15:09:26.535897932 +0000 docker.api: {\"log\":\"hello \\\"world\\\"\\n\",\"n\":1}\n\
         2025-03-14 15:09:27.000000005 +0000 docker.api: {\"a\":[1,null,true]}\n"
    );
}

#[tokio::test]
async fn stdout_json_format_is_the_record_alone() {
    let buf = Shared::default();
    let out = StdoutOutput::with_writer(&stdout_cfg(LineFormat::Json), Box::new(buf.clone()));
    out.emit(&batch()).await.unwrap();
    out.shutdown().await;
    assert_eq!(
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap(),
        "{\"log\":\"hello \\\"world\\\"\\n\",\"n\":1}\n{\"a\":[1,null,true]}\n"
    );
}

#[tokio::test]
async fn file_output_expands_time_and_tag_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileOutputConfig {
        path: format!("{}/${{tag}}/%Y%m%d-%H", dir.path().display()),
        add_path_suffix: true,
        path_suffix: ".log".into(),
        format: LineFormat::OutFile,
        metadata_key: Some(DEFAULT_LINE_METADATA_KEY.into()),
    };
    let out = FileOutput::new(&cfg);
    out.emit(&batch()).await.unwrap();
    out.emit(&batch()).await.unwrap();
    let p = dir.path().join("docker.api/20250314-15.log");
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        "2025-03-14T15:09:26+0000\tdocker.api\t{\"log\":\"hello \\\"world\\\"\\n\",\"n\":1}"
    );
    assert_eq!(
        lines[1],
        "2025-03-14T15:09:27+0000\tdocker.api\t{\"a\":[1,null,true]}"
    );

    let json_cfg = FileOutputConfig {
        path: format!("{}/plain", dir.path().display()),
        format: LineFormat::Json,
        add_path_suffix: false,
        ..cfg
    };
    let out = FileOutput::new(&json_cfg);
    out.emit(&batch()).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("plain")).unwrap();
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    assert_eq!(text.lines().count(), 2);
}

fn mp(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v);
    v
}

#[test]
fn transcoder_escaping_and_unicode() {
    let v = mp(|v| {
        rmp::encode::write_str(
            v,
            "q\" b\\ nl\n tab\t cr\r bs\u{8} ff\u{c} nul\u{0} esc\u{1b} del\u{7f} é 日本 🎉 /",
        )
        .unwrap();
    });
    let s = to_json_string(&v).unwrap();
    assert_eq!(s, "\"q\\\" b\\\\ nl\\n tab\\t cr\\r bs\\b ff\\f nul\\u0000 esc\\u001b del\u{7f} é 日本 🎉 /\"");
    // serde_json agrees on the decoded value.
    let back: String = serde_json::from_str(&s).unwrap();
    assert!(back.starts_with("q\" b\\ nl\n"));
}

#[test]
fn transcoder_invalid_utf8_becomes_replacement_chars() {
    let v = mp(|v| {
        rmp::encode::write_str_len(v, 6).unwrap();
        v.extend_from_slice(b"a\xffb\xe6\x97c");
    });
    assert_eq!(to_json_string(&v).unwrap(), "\"a\u{FFFD}b\u{FFFD}c\"");
}

#[test]
fn transcoder_numbers() {
    let v = mp(|v| {
        rmp::encode::write_array_len(v, 9).unwrap();
        rmp::encode::write_u64(v, u64::MAX).unwrap();
        rmp::encode::write_i64(v, i64::MIN).unwrap();
        rmp::encode::write_sint(v, -1).unwrap();
        rmp::encode::write_f64(v, 42.0).unwrap();
        rmp::encode::write_f64(v, 0.1).unwrap();
        rmp::encode::write_f32(v, 0.1).unwrap();
        rmp::encode::write_f64(v, f64::NAN).unwrap();
        rmp::encode::write_f64(v, f64::INFINITY).unwrap();
        rmp::encode::write_f32(v, f32::NEG_INFINITY).unwrap();
    });
    assert_eq!(
        to_json_string(&v).unwrap(),
        "[18446744073709551615,-9223372036854775808,-1,42.0,0.1,0.1,null,null,null]"
    );
}

#[test]
fn transcoder_nested_bin_ext_and_keys() {
    let v = mp(|v| {
        rmp::encode::write_map_len(v, 6).unwrap();
        rmp::encode::write_str(v, "nested").unwrap();
        rmp::encode::write_map_len(v, 1).unwrap();
        rmp::encode::write_str(v, "a").unwrap();
        rmp::encode::write_array_len(v, 2).unwrap();
        rmp::encode::write_map_len(v, 0).unwrap();
        rmp::encode::write_array_len(v, 0).unwrap();
        rmp::encode::write_str(v, "bin_text").unwrap();
        rmp::encode::write_bin(v, b"plain").unwrap();
        rmp::encode::write_str(v, "bin_raw").unwrap();
        rmp::encode::write_bin(v, &[0xff, 0x00, 0x01]).unwrap();
        rmp::encode::write_str(v, "ext").unwrap();
        rmp::encode::write_ext_meta(v, 8, 0).unwrap();
        v.extend_from_slice(&[0x67, 0xd4, 0x46, 0xa6, 0, 0, 0, 1]);
        rmp::encode::write_uint(v, 7).unwrap();
        rmp::encode::write_bool(v, false).unwrap();
        rmp::encode::write_nil(v).unwrap();
        rmp::encode::write_nil(v).unwrap();
    });
    assert_eq!(
        to_json_string(&v).unwrap(),
        r#"{"nested":{"a":[{},[]]},"bin_text":"plain","bin_raw":"/wAB","ext":{"$ext":{"type":0,"data":"Z9RGpgAAAAE="}},"7":false,"null":null}"#
    );
}

#[test]
fn transcoder_errors() {
    assert_eq!(
        write_json(&[0x92, 0x01], &mut Vec::new()),
        Err(TranscodeError::Truncated)
    );
    assert_eq!(
        write_json(&[0xc1], &mut Vec::new()),
        Err(TranscodeError::InvalidMarker(0xc1))
    );
    let deep: Vec<u8> = std::iter::repeat_n(0x91, 1000).chain([0xc0]).collect();
    assert_eq!(
        write_json(&deep, &mut Vec::new()),
        Err(TranscodeError::TooDeep)
    );
    // Used length is reported, trailing bytes are not consumed.
    assert_eq!(write_json(&[0x01, 0x02], &mut Vec::new()), Ok(1));
}

#[test]
fn transcoder_matches_serde_json_on_golden_records() {
    // Every record of the Docker-shaped vectors transcodes to JSON equal to the .json's record.
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/forward");
    for name in [
        "go_docker_default",
        "go_docker_extra_attrs",
        "go_docker_str_lengths",
        "go_docker_partial",
    ] {
        let bin = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let want: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap())
                .unwrap();
        let mut cur = std::io::Cursor::new(&bin[..]);
        let mut i = 0;
        while (cur.position() as usize) < bin.len() {
            let v = rmpv::decode::read_value(&mut cur).unwrap();
            let arr = v.as_array().unwrap();
            let mut recs = Vec::new();
            if arr[1].is_array() {
                for e in arr[1].as_array().unwrap() {
                    recs.push(e.as_array().unwrap()[1].clone());
                }
            } else {
                recs.push(arr[2].clone());
            }
            for r in recs {
                let mut raw = Vec::new();
                rmpv::encode::write_value(&mut raw, &r).unwrap();
                let got: serde_json::Value =
                    serde_json::from_str(&to_json_string(&raw).unwrap()).unwrap();
                assert_eq!(got, want["events"][i]["record"], "{name} event {i}");
                i += 1;
            }
        }
        assert!(i > 0, "{name}");
    }
}
