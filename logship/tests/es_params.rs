//! The elasticsearch output's fluent-plugin-elasticsearch parameters, each checked against the
//! documents a real engine stored (OpenSearch 2.19, Elasticsearch 7.10 and 8.15; one test
//! per engine):
//!
//! - `include_timestamp`, `time_key`, `time_key_format`, `time_key_exclude_timestamp`:
//!   which `@timestamp` a document gets and which day its logstash index is named after;
//! - `target_index_key`: the record names its index (a dotted path), and the key is not
//!   stored;
//! - `retry_max_times` / `retry_timeout`: while the node is unreachable (a cut TCP proxy),
//!   exactly that many retries, then the dead letter with the reason; then, reachable again,
//!   the same output indexes new events;
//! - `log_es_400_reason`: the engine's own reason for a rejected document in logship's log
//!   (with it), or only a pointer to the dead letter (without it).

mod durability_common;
mod es_common;
mod logship_child;

use std::time::{Duration, Instant};

use durability_common::{log_fields, CutProxy};
use es_common::*;
use logship::event::{Event, EventBatch, EventTime};
use logship::forward::client::encode_record_from_json;
use serde_json::{json, Value};

on_every_engine!(
    time_key_and_include_timestamp_decide_the_timestamp_and_the_index_day,
    target_index_key_routes_documents_and_is_not_stored,
    retry_max_times_and_retry_timeout_give_up_into_the_dead_letter,
    log_es_400_reason_logs_the_engines_reason,
);

const SOURCE: &str = "<source>\n  @type forward\n  port 0\n  bind 127.0.0.1\n</source>\n";

/// `<match TAG>` for the elasticsearch output `@id out_TAG` at `es` with `params`, flushing
/// every 0.2 s.
fn out(tag: &str, es: &str, params: &str) -> String {
    let u = reqwest::Url::parse(es).unwrap();
    let id = tag.trim_end_matches(".**");
    format!(
        "<match {tag}>\n  @type elasticsearch\n  @id out_{id}\n  host {}\n  port {}\n{params}\n  <buffer>\n    flush_interval 0.2\n    retry_wait 0.2\n    retry_max_interval 0.5\n  </buffer>\n</match>\n",
        u.host_str().unwrap(),
        u.port().unwrap()
    )
}

/// Sends `(tag, record)` pairs with acks, all with event time `t`.
async fn send(ls: &Logship, t: EventTime, events: &[(&str, Value)]) {
    let mut c = ls.client().await;
    for (tag, rec) in events {
        c.send_message(tag, t, &encode_record_from_json(rec))
            .await
            .unwrap();
    }
}

/// The `_source`s in `index` (a pattern) whose `run` is `run`, once there are `n` (60 s).
async fn docs(es: &str, index: &str, run: &str, n: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = http().post(format!("{es}/{index}/_refresh")).send().await;
        let r = http()
            .post(format!("{es}/{index}/_search"))
            .json(&json!({"size": 100, "query": {"term": {"run": run}}, "sort": [{"seq": "asc"}]}))
            .send()
            .await;
        if let Ok(r) = r {
            if r.status().is_success() {
                let v: Value = r.json().await.unwrap();
                let hits = v["hits"]["hits"].as_array().unwrap().clone();
                if hits.len() >= n {
                    assert_eq!(hits.len(), n, "more documents than sent: {v}");
                    return hits
                        .into_iter()
                        .map(|h| {
                            (
                                h["_index"].as_str().unwrap().to_string(),
                                h["_source"].clone(),
                            )
                        })
                        .collect();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{n} documents of run {run} not in {index}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn delete(es: &str, pattern: &str) {
    let _ = http().delete(format!("{es}/{pattern}")).send().await;
}

async fn time_key_and_include_timestamp_decide_the_timestamp_and_the_index_day(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let conf = format!(
        "{SOURCE}{}{}{}{}",
        // no @timestamp at all: neither logstash_format nor include_timestamp
        out("plain", &es, &format!("  index_name params-{run}-plain")),
        // include_timestamp: the event time
        out(
            "stamped",
            &es,
            &format!("  index_name params-{run}-stamped\n  include_timestamp true")
        ),
        // logstash_format + time_key with a strptime format: the record's time, in UTC
        out(
            "timed",
            &es,
            &format!(
                "  logstash_format true\n  logstash_prefix params-{run}-timed\n  logstash_dateformat %Y.%m.%d\n  time_key ts\n  time_key_format %d/%b/%Y:%H:%M:%S.%N %z"
            )
        ),
        // time_key_exclude_timestamp: the record's time names the index, no @timestamp
        out(
            "excluded",
            &es,
            &format!(
                "  logstash_format true\n  logstash_prefix params-{run}-excluded\n  logstash_dateformat %Y.%m.%d\n  time_key ts\n  time_key_exclude_timestamp true"
            )
        ),
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());
    let t = EventTime::new(1_764_000_000, 123_456_789); // 2025-11-24T16:00:00.123456789Z
    send(
        &ls,
        t,
        &[
            ("plain", json!({"run": run, "seq": 1})),
            ("stamped", json!({"run": run, "seq": 2})),
            (
                "timed",
                json!({"run": run, "seq": 3, "ts": "31/Dec/2021:23:30:00.25 -0100"}),
            ),
            ("timed", json!({"run": run, "seq": 4, "ts": "not a time"})),
            (
                "excluded",
                json!({"run": run, "seq": 5, "ts": "2022-06-15T08:00:00Z"}),
            ),
        ],
    )
    .await;
    let d = docs(&es, &format!("params-{run}-*"), &run, 5).await;
    assert_eq!(d[0].0, format!("params-{run}-plain"));
    assert!(d[0].1.get("@timestamp").is_none(), "{:?}", d[0]);
    assert_eq!(d[1].0, format!("params-{run}-stamped"));
    assert_eq!(d[1].1["@timestamp"], "2025-11-24T16:00:00.123456789Z");
    // 23:30 at -01:00 is 00:30 UTC the next day, which names the index
    assert_eq!(d[2].0, format!("params-{run}-timed-2022.01.01"));
    assert_eq!(d[2].1["@timestamp"], "2022-01-01T00:30:00.250000000Z");
    assert_eq!(
        d[2].1["ts"], "31/Dec/2021:23:30:00.25 -0100",
        "time_key is kept"
    );
    // an unparsable time: the event time (and a WARN naming the value)
    assert_eq!(d[3].0, format!("params-{run}-timed-2025.11.24"));
    assert_eq!(d[3].1["@timestamp"], "2025-11-24T16:00:00.123456789Z");
    assert_eq!(d[4].0, format!("params-{run}-excluded-2022.06.15"));
    assert!(d[4].1.get("@timestamp").is_none(), "{:?}", d[4]);
    let warned = log_fields(
        &ls,
        "elasticsearch: the record's time does not parse; the event time is used instead",
    );
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0]["value"], "not a time");
    ls.stop();
    delete(&es, &format!("params-{run}-*")).await;
}

async fn target_index_key_routes_documents_and_is_not_stored(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let conf = format!(
        "{SOURCE}{}",
        out(
            "app.**",
            &es,
            &format!("  index_name params-{run}-fallback\n  target_index_key k8s.index")
        )
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());
    send(
        &ls,
        EventTime::now(),
        &[
            (
                "app.a",
                json!({"run": run, "seq": 1, "k8s": {"index": format!("Params-{run}-Billing"), "pod": "p1"}}),
            ),
            ("app.a", json!({"run": run, "seq": 2, "k8s": {"pod": "p2"}})),
            (
                "app.b",
                json!({"run": run, "seq": 3, "k8s": {"index": null, "pod": "p3"}}),
            ),
        ],
    )
    .await;
    let d = docs(&es, &format!("params-{run}-*"), &run, 3).await;
    // lower-cased, as index names must be
    assert_eq!(d[0].0, format!("params-{run}-billing"));
    assert_eq!(d[0].1["k8s"], json!({"pod": "p1"}), "the key is not stored");
    assert_eq!(d[1].0, format!("params-{run}-fallback"));
    assert_eq!(d[2].0, format!("params-{run}-fallback"));
    assert_eq!(d[2].1["k8s"], json!({"index": null, "pod": "p3"}));
    ls.stop();
    delete(&es, &format!("params-{run}-*")).await;
}

async fn retry_max_times_and_retry_timeout_give_up_into_the_dead_letter(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let u = reqwest::Url::parse(&es).unwrap();
    let proxy = CutProxy::start(format!("127.0.0.1:{}", u.port().unwrap()), false).await;
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let dl_times = dir.path().join("dl-times.jsonl");
    let dl_timeout = dir.path().join("dl-timeout.jsonl");
    let conf = format!(
        "{SOURCE}{}{}",
        out(
            "times",
            &via,
            &format!(
                "  index_name params-{run}-times\n  dead_letter_path {}\n  verify_es_version_at_startup false",
                dl_times.display()
            )
        )
        .replace("retry_wait 0.2", "retry_wait 0.2\n    retry_max_times 3"),
        out(
            "timeout",
            &via,
            &format!(
                "  index_name params-{run}-timeout\n  dead_letter_path {}\n  verify_es_version_at_startup false",
                dl_timeout.display()
            )
        )
        .replace("retry_wait 0.2", "retry_wait 0.2\n    retry_timeout 1.5s"),
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());
    let t = EventTime::now();
    // The two "times" events in one Forward entry, so one chunk holds both.
    let mut c = ls.client().await;
    let ev = |seq: u64| Event::new(t, encode_record_from_json(&json!({"run": run, "seq": seq})));
    c.send_batch(&EventBatch::new("times", vec![ev(1), ev(2)]))
        .await
        .unwrap();
    c.send_batch(&EventBatch::new("timeout", vec![ev(3)]))
        .await
        .unwrap();
    let lines = |p: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&dl_times).len() < 2 || lines(&dl_timeout).is_empty() {
        assert!(Instant::now() < deadline, "nothing given up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let given_up = lines(&dl_times);
    assert_eq!(given_up.len(), 2);
    assert!(given_up
        .iter()
        .all(|l| l["error"]["reason"] == "retry_max_times exceeded"));
    assert_eq!(
        lines(&dl_timeout)[0]["error"]["reason"],
        "retry_timeout exceeded"
    );
    // retry_max_times 3: the first attempt and exactly 3 retries, then the give-up
    let retries = log_fields(&ls, "bulk delivery failed; will retry");
    let of = |id: &str| retries.iter().filter(|f| f["output"] == id).count();
    assert_eq!(of("out_times"), 3, "{retries:?}");
    // retry_timeout 1.5s with waits of 0.2 s doubling to 0.5 s: a few retries, not more
    assert!((2..=4).contains(&of("out_timeout")), "{retries:?}");
    // Reachable again: the same outputs deliver what comes next.
    proxy.set_up(true);
    send(
        &ls,
        t,
        &[
            ("times", json!({"run": run, "seq": 4})),
            ("timeout", json!({"run": run, "seq": 5})),
        ],
    )
    .await;
    let d = docs(&es, &format!("params-{run}-*"), &run, 2).await;
    assert_eq!(d[0].1["seq"], 4);
    assert_eq!(d[1].1["seq"], 5);
    assert_eq!(lines(&dl_times).len() + lines(&dl_timeout).len(), 3);
    ls.stop();
    delete(&es, &format!("params-{run}-*")).await;
}

async fn log_es_400_reason_logs_the_engines_reason(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    // `status` is a short: a string there is a mapping error (400) for that document.
    for which in ["with", "without"] {
        json(
            http()
                .put(format!("{es}/params-{run}-{which}"))
                .json(&json!({"mappings": {"properties": {"status": {"type": "short"}}}})),
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{SOURCE}{}{}",
        out(
            "with",
            &es,
            &format!(
                "  index_name params-{run}-with\n  log_es_400_reason true\n  dead_letter_path {}",
                dir.path().join("with.jsonl").display()
            )
        ),
        out(
            "without",
            &es,
            &format!(
                "  index_name params-{run}-without\n  dead_letter_path {}",
                dir.path().join("without.jsonl").display()
            )
        ),
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());
    send(
        &ls,
        EventTime::now(),
        &[
            ("with", json!({"run": run, "seq": 1, "status": "oops"})),
            ("with", json!({"run": run, "seq": 2, "status": 200})),
            ("without", json!({"run": run, "seq": 3, "status": "oops"})),
            ("without", json!({"run": run, "seq": 4, "status": 200})),
        ],
    )
    .await;
    docs(&es, &format!("params-{run}-*"), &run, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dl = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
        if dl("with.jsonl").lines().count() == 1 && dl("without.jsonl").lines().count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reasons = log_fields(&ls, "elasticsearch rejected a document (400)");
    assert_eq!(
        reasons.len(),
        1,
        "only the output with log_es_400_reason: {reasons:?}"
    );
    assert_eq!(reasons[0]["tag"], "with");
    // The engines name a document that does not fit the mapping differently.
    let expected_type = match engine {
        Engine::Elasticsearch8 => "document_parsing_exception",
        Engine::OpenSearch | Engine::Elasticsearch7 => "mapper_parsing_exception",
    };
    assert_eq!(reasons[0]["error_type"], expected_type);
    assert!(
        reasons[0]["reason"].as_str().unwrap().contains("[status]"),
        "{reasons:?}"
    );
    let summary = log_fields(
        &ls,
        "elasticsearch rejected documents (400: mapping or document errors); they are in the dead letter (set log_es_400_reason true to log each reason)",
    );
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0]["rejected"], 1);
    ls.stop();
    delete(&es, &format!("params-{run}-*")).await;
}
