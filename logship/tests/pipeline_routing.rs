//! Tag matching and routing: first match wins, filters in order (only those above the match),
//! labels, relabel, copy, no match.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use logship::config::Config;
use logship::event::{BoxFuture, EmitError, Event, EventBatch, EventSink, EventTime};
use logship::msgpack_json::to_json_string;
use logship::output::{Output, OutputPlugin};
use logship::pipeline::pattern::TagPattern;
use logship::pipeline::record::value_to_msgpack;
use logship::pipeline::{LabelSink, Router};
use serde_json::json;

/// An output that remembers what it got, as (output id, tag, record JSON).
struct Capture {
    id: String,
    log: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Output for Capture {
    fn emit<'a>(&'a self, batch: &'a EventBatch) -> BoxFuture<'a, Result<(), EmitError>> {
        Box::pin(async move {
            let mut l = self.log.lock().unwrap();
            for e in &batch.events {
                l.push((
                    self.id.clone(),
                    batch.tag.to_string(),
                    to_json_string(&e.record).unwrap(),
                ));
            }
            Ok(())
        })
    }
}

type Log = Arc<Mutex<Vec<(String, String, String)>>>;

/// Builds a router where every non-copy/relabel output is a Capture named by its @id
/// (or its type when it has none).
fn router(conf: &str) -> (Arc<Router>, Log) {
    let cfg = Config::from_str_at(conf, Path::new("test.conf")).unwrap_or_else(|e| panic!("{e:?}"));
    let log: Log = Arc::default();
    let l2 = log.clone();
    let mut capture = move |o: &dyn OutputPlugin, id: Option<&str>| -> Option<Arc<dyn Output>> {
        if matches!(o.type_name(), "copy" | "relabel") {
            return None;
        }
        let name = id.map_or_else(|| o.type_name().to_string(), str::to_string);
        Some(Arc::new(Capture {
            id: name,
            log: l2.clone(),
        }))
    };
    (Router::build_with(&cfg, &mut capture).unwrap(), log)
}

fn batch(tag: &str, records: &[serde_json::Value]) -> EventBatch {
    EventBatch::new(
        tag,
        records
            .iter()
            .map(|r| {
                Event::new(
                    EventTime::new(1_741_964_966, 0),
                    Bytes::from(value_to_msgpack(r)),
                )
            })
            .collect(),
    )
}

#[test]
fn tag_pattern_table() {
    let t = |p: &str, tag: &str| TagPattern::parse(p).unwrap().matches(tag);
    assert!(t("docker.**", "docker"));
    assert!(t("docker.**", "docker.api"));
    assert!(t("docker.**", "docker.api.web"));
    assert!(!t("docker.**", "dockerx"));
    assert!(t("docker.*", "docker.api"));
    assert!(!t("docker.*", "docker"));
    assert!(!t("docker.*", "docker.api.web"));
    assert!(t("*.{api,web}", "docker.web"));
    assert!(!t("*.{api,web}", "docker.db"));
    assert!(t("a b.* c.**", "c"));
    assert!(t("a b.* c.**", "b.x"));
    assert!(!t("a b.* c.**", "b"));
    assert!(t("**", "anything.at.all"));
    assert!(t("**.err", "app.x.err"));
    assert!(t("{a,b.{c,d}}.z", "b.d.z"));
    assert!(!t("{a,b.{c,d}}.z", "b.e.z"));
    assert!(t("a.b\\*", "a.b*"));
    assert!(!t("a.b\\*", "a.bc"));
}

#[tokio::test]
async fn first_match_wins_and_only_filters_above_it_apply() {
    let (r, log) = router(
        r#"
<filter app.**>
  @type record_transformer
  <record>
    step one
  </record>
</filter>
<match app.debug>
  @type null
  @id debug
</match>
<filter app.**>
  @type record_transformer
  <record>
    step "${step}-two"
    tag ${tag}
  </record>
</filter>
<match app.**>
  @type null
  @id app
</match>
<filter **>
  @type record_transformer
  <record>
    never applied
  </record>
</filter>
<match **>
  @type null
  @id rest
</match>
"#,
    );
    r.emit(batch("app.debug", &[json!({"m": 1})]))
        .await
        .unwrap();
    r.emit(batch("app.web", &[json!({"m": 2})])).await.unwrap();
    r.emit(batch("other", &[json!({"m": 3})])).await.unwrap();
    let l = log.lock().unwrap().clone();
    assert_eq!(
        l,
        vec![
            (
                "debug".into(),
                "app.debug".into(),
                r#"{"m":1,"step":"one"}"#.into()
            ),
            (
                "app".into(),
                "app.web".into(),
                r#"{"m":2,"step":"one-two","tag":"app.web"}"#.into()
            ),
            // The last filter is above <match **>, so it applies to "other" (not to app.*).
            (
                "rest".into(),
                "other".into(),
                r#"{"m":3,"never":"applied"}"#.into()
            ),
        ]
    );
}

#[tokio::test]
async fn labels_relabel_copy_and_no_match() {
    let (r, log) = router(
        r#"
<source>
  @type forward
  @label @IN
</source>
<match audit.**>
  @type relabel
  @label @ARCHIVE
</match>
<match known.**>
  @type null
  @id root
</match>
<label @IN>
  <filter **>
    @type record_transformer
    <record>
      via in
    </record>
  </filter>
  <match **>
    @type copy
    <store>
      @type null
      @id in_a
    </store>
    <store>
      @type relabel
      @label @ARCHIVE
    </store>
  </match>
</label>
<label @ARCHIVE>
  <match **>
    @type null
    @id archive
  </match>
</label>
"#,
    );
    let in_sink = LabelSink {
        router: r.clone(),
        label: "@IN".into(),
    };
    in_sink
        .emit(batch("x.y", &[json!({"n": 1})]))
        .await
        .unwrap();
    r.emit(batch("audit.login", &[json!({"n": 2})]))
        .await
        .unwrap();
    // No <match> for this tag in the root: dropped, and emit still succeeds.
    r.emit(batch("unknown", &[json!({"n": 3})])).await.unwrap();
    r.emit(batch("known.a", &[json!({"n": 4})])).await.unwrap();
    let l = log.lock().unwrap().clone();
    assert_eq!(
        l,
        vec![
            ("in_a".into(), "x.y".into(), r#"{"n":1,"via":"in"}"#.into()),
            (
                "archive".into(),
                "x.y".into(),
                r#"{"n":1,"via":"in"}"#.into()
            ),
            ("archive".into(), "audit.login".into(), r#"{"n":2}"#.into()),
            ("root".into(), "known.a".into(), r#"{"n":4}"#.into()),
        ]
    );
}

#[tokio::test]
async fn router_keeps_event_order_and_times() {
    let (r, log) = router("<match **>\n  @type null\n  @id all\n</match>\n");
    let recs: Vec<_> = (0..100).map(|i| json!({"i": i})).collect();
    r.emit(batch("t", &recs)).await.unwrap();
    let l = log.lock().unwrap();
    assert_eq!(l.len(), 100);
    for (i, e) in l.iter().enumerate() {
        assert_eq!(e.2, format!("{{\"i\":{i}}}"));
    }
}

#[tokio::test]
async fn shutdown_refuses_new_events() {
    let (r, _log) = router("<match **>\n  @type null\n</match>\n");
    r.shutdown().await;
    assert!(matches!(
        r.emit(batch("t", &[json!({})])).await,
        Err(EmitError::ShuttingDown)
    ));
}

#[tokio::test]
async fn concat_timeouts_continue_down_the_chain_or_to_timeout_label() {
    let (r, log) = router(
        r#"
<filter docker.**>
  @type concat
  key log
  use_partial_metadata true
  separator ""
  flush_interval 0.05s
</filter>
<filter docker.**>
  @type record_transformer
  <record>
    after concat
  </record>
</filter>
<match docker.**>
  @type null
  @id main
</match>
<filter late.**>
  @type concat
  key log
  use_partial_metadata true
  flush_interval 0.05s
  timeout_label @TIMEOUT
</filter>
<match late.**>
  @type null
  @id late
</match>
<label @TIMEOUT>
  <match **>
    @type null
    @id timeout
  </match>
</label>
"#,
    );
    let part = |id: &str| json!({"log": "piece", "partial_message": "true", "partial_id": id, "partial_ordinal": "1", "partial_last": "false"});
    r.emit(batch("docker.a", &[part("A")])).await.unwrap();
    r.emit(batch("late.b", &[part("B")])).await.unwrap();
    assert!(
        log.lock().unwrap().is_empty(),
        "held back until complete or timed out"
    );
    r.flush_filters(false).await;
    assert!(log.lock().unwrap().is_empty(), "not expired yet");
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    r.flush_filters(false).await;
    let mut l = log.lock().unwrap().clone();
    l.sort();
    assert_eq!(
        l,
        vec![
            (
                "main".into(),
                "docker.a".into(),
                r#"{"log":"piece","after":"concat"}"#.into()
            ),
            (
                "timeout".into(),
                "late.b".into(),
                r#"{"log":"piece"}"#.into()
            ),
        ]
    );
    // Shutdown flushes whatever is still held.
    r.emit(batch("docker.c", &[part("C")])).await.unwrap();
    r.shutdown().await;
    assert_eq!(log.lock().unwrap().len(), 3);
}

/// Parser filter `emit_invalid_record_to_error` (default true) with a `<label @ERROR>`: as in
/// Fluentd, unparsable records go to `@ERROR` with their tag and original record, and only a
/// record whose key is missing (or whose JSON is not an object) stays in the stream as well
/// (with `reserve_data true`). Without the label, or with the parameter false, they pass on.
#[tokio::test]
async fn unparsable_records_go_to_the_error_label() {
    let conf = |emit: &str, with_label: bool| {
        format!(
            r#"
<filter app.**>
  @type parser
  key_name log
  reserve_data true
  emit_invalid_record_to_error {emit}
  <parse>
    @type json
  </parse>
</filter>
<match app.**>
  @type null
  @id main
</match>
{}
"#,
            if with_label {
                "<label @ERROR>\n  <match **>\n    @type null\n    @id errors\n  </match>\n</label>"
            } else {
                ""
            }
        )
    };
    let input = || {
        batch(
            "app.web",
            &[
                json!({"log": "{\"a\":1}"}),
                json!({"log": "not json"}),
                json!({"other": 1}),
                json!({"log": "[1,2]"}),
            ],
        )
    };
    let (r, log) = router(&conf("true", true));
    r.emit(input()).await.unwrap();
    let got = log.lock().unwrap().clone();
    let of = |id: &str| -> Vec<String> {
        got.iter()
            .filter(|(o, _, _)| o == id)
            .map(|(_, _, rec)| rec.clone())
            .collect()
    };
    assert_eq!(
        of("main"),
        vec![
            r#"{"log":"{\"a\":1}","a":1}"#,
            r#"{"other":1}"#,
            r#"{"log":"[1,2]"}"#
        ]
    );
    assert_eq!(
        of("errors"),
        vec![
            r#"{"log":"not json"}"#,
            r#"{"other":1}"#,
            r#"{"log":"[1,2]"}"#
        ]
    );
    assert!(got.iter().all(|(_, tag, _)| tag == "app.web"));

    for (emit, label) in [("false", true), ("true", false)] {
        let (r, log) = router(&conf(emit, label));
        r.emit(input()).await.unwrap();
        let got = log.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{emit} {label}: {got:?}");
        assert!(got.iter().all(|(o, _, _)| o == "main"));
    }
}
