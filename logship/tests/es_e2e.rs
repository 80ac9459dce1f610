//! `logship run -c fluentd/fluentd.conf` against each real search engine of
//! `scripts/test-services.sh` (OpenSearch 2.19, Elasticsearch 7.10 and 8.15; one test per engine):
//! Docker-shaped records (the api's bunyan lines in `log`) sent with acks over Forward
//! Message mode land in `fluentd-YYYYMMDD` with the template's mapping; resends do not
//! duplicate; mapping failures go to the dead letter; an outage of the node loses nothing and
//! duplicates nothing; version detection names the engine.
//!
//! Without the engine's URL (`TEST_ELASTICSEARCH_URL`, `TEST_ELASTICSEARCH7_URL`) these tests
//! skip, unless `REQUIRE_SERVICES=1`.

mod es_common;
mod logship_child;

use std::time::Duration;

use es_common::*;
use logship::event::EventTime;
use serde_json::{json, Value};

const TAG: &str = "docker.api";

on_every_engine!(
    fluentd_conf_indexes_docker_bunyan_lines_once_with_the_template_mapping,
    mapping_failures_go_to_the_dead_letter_and_the_rest_is_indexed,
    an_outage_of_the_node_loses_and_duplicates_nothing,
);

async fn fluentd_conf_indexes_docker_bunyan_lines_once_with_the_template_mapping(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let ls = Logship::start(&es, &[]);
    let mut client = ls.client().await;
    let n = 300;
    let base = EventTime::now();
    let mut sent = Vec::new();
    for i in 0..n {
        let t = EventTime::new(base.secs, (i * 1000) as u32);
        let line = bunyan_line(&run, i, t, json!(200));
        client
            .send_message(TAG, t, &docker_record(&line, false))
            .await
            .unwrap();
        sent.push((t, line));
    }
    wait_count(&es, &run, n as u64, 60).await;

    // Client resend of the first 100 (same events; Docker's Go client may order keys anew).
    let mut client2 = ls.client().await;
    for (t, line) in &sent[..100] {
        client2
            .send_message(TAG, *t, &docker_record(line, true))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_count(&es, &run, n as u64, 10).await;

    let index = today_index();
    let cat = json(http().get(format!("{es}/_cat/indices?format=json"))).await;
    assert!(
        cat.as_array()
            .unwrap()
            .iter()
            .any(|i| i["index"] == index.as_str()),
        "{index} not in {cat}"
    );
    let m = json(http().get(format!("{es}/{index}/_mapping"))).await;
    let p = &m[&index]["mappings"]["properties"];
    assert_eq!(p["@timestamp"]["type"], "date_nanos", "{m}");
    assert_eq!(p["level"]["type"], "short");
    assert_eq!(p["status"]["type"], "short");
    assert_eq!(p["latency_ms"]["type"], "double");
    assert_eq!(p["msg"]["type"], "text");
    assert_eq!(p["msg"]["fields"]["keyword"]["type"], "keyword");
    assert_eq!(p["container_name"]["type"], "keyword");
    assert_eq!(p["request_id"]["type"], "keyword");
    dashboard_fields_exist_in(p, &m);

    // One document as stored: bunyan fields parsed out of `log`, @timestamp with nanoseconds.
    let hit = json(
        http()
            .get(format!("{es}/fluentd-*/_search"))
            .query(&[("q", format!("request_id:{run}-7"))]),
    )
    .await;
    let doc = &hit["hits"]["hits"][0]["_source"];
    assert_eq!(doc["status"], 200, "{hit}");
    assert_eq!(doc["container_name"], "/api");
    assert_eq!(doc["tag"], TAG);
    assert!(
        doc["@timestamp"].as_str().unwrap().ends_with("007000Z"),
        "{doc}"
    );

    // Version detection named the engine behind the URL.
    let connected = ls
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "elasticsearch output connected")
        .expect("an 'elasticsearch output connected' line");
    let described = connected["fields"]["engine"].as_str().unwrap();
    assert!(
        described.starts_with(engine.describe_prefix()),
        "{engine:?} detected as {described}"
    );

    drop(client);
    drop(client2);
    let stats = ls.stop();
    assert_eq!(stats["indexed"], n as u64, "{stats}");
    assert_eq!(stats["duplicates"], 100, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
}

async fn mapping_failures_go_to_the_dead_letter_and_the_rest_is_indexed(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let dl = tempfile::tempdir().unwrap();
    let dl_path = dl.path().join("dead-letter.jsonl");
    let ls = Logship::start(
        &es,
        &[(
            "  @id out_es\n",
            &format!("  @id out_es\n  dead_letter_path {}\n", dl_path.display()),
        )],
    );
    let mut client = ls.client().await;
    let n = 100;
    let mut bad = Vec::new();
    for i in 0..n {
        let t = EventTime::now();
        let status = if i % 10 == 3 {
            bad.push(format!("{run}-{i}"));
            json!("not-a-number")
        } else {
            json!(201)
        };
        let line = bunyan_line(&run, i, t, status);
        client
            .send_message(TAG, t, &docker_record(&line, false))
            .await
            .unwrap();
    }
    wait_count(&es, &run, (n - bad.len()) as u64, 60).await;
    drop(client);
    let stats = ls.stop();
    assert_eq!(stats["dead_lettered"], bad.len() as u64, "{stats}");
    assert_eq!(stats["retried"], 0, "{stats}");
    let text = std::fs::read_to_string(&dl_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), bad.len(), "{text}");
    for l in &lines {
        assert_eq!(l["tag"], TAG);
        assert!(bad.contains(&l["record"]["request_id"].as_str().unwrap().to_string()));
        assert_eq!(l["record"]["status"], "not-a-number");
        assert_eq!(l["error"]["status"], 400, "{l}");
        let reason = l["error"]["error"]["reason"].as_str().unwrap();
        assert!(reason.contains("[status]"), "{reason}");
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }
}

async fn an_outage_of_the_node_loses_and_duplicates_nothing(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let Some(script) = Engine::services_script() else {
        return;
    };
    let _g = engine.lock().lock().await;
    let svc = |cmd: &str| engine.service_cmd(&script, cmd);
    let run = run_id();
    // Faster retries than the shipped 30 s cap so the test does not wait long after the restart.
    let ls = Logship::start(&es, &[("retry_max_interval 30s", "retry_max_interval 2s")]);
    let mut client = ls.client().await;
    // Warm up: the template is installed and a first batch is indexed.
    let t0 = EventTime::now();
    client
        .send_message(
            TAG,
            t0,
            &docker_record(&bunyan_line(&run, 0, t0, json!(200)), false),
        )
        .await
        .unwrap();
    wait_count(&es, &run, 1, 30).await;

    svc("stop-service");
    // Every send is acknowledged while the node is down: the buffer holds the events.
    let n = 200;
    let mut sent = Vec::new();
    for i in 1..=n {
        let t = EventTime::now();
        let line = bunyan_line(&run, i, t, json!(200));
        client
            .send_message(TAG, t, &docker_record(&line, false))
            .await
            .unwrap();
        sent.push((t, line));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    svc("start-service");
    // The node restarts with an empty data directory: only what was sent during the outage
    // can be there, each exactly once, with the template's mapping.
    wait_count(&es, &run, n as u64, 120).await;
    // A resend of everything after the restart still creates nothing new.
    for (t, line) in &sent {
        client
            .send_message(TAG, *t, &docker_record(line, true))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_count(&es, &run, n as u64, 10).await;
    let index = today_index();
    let m = json(http().get(format!("{es}/{index}/_mapping"))).await;
    assert_eq!(
        m[&index]["mappings"]["properties"]["@timestamp"]["type"], "date_nanos",
        "template re-installed after the restart: {m}"
    );
    drop(client);
    let stats = ls.stop();
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    assert_eq!(stats["indexed"], (n + 1) as u64, "{stats}");
    assert_eq!(stats["duplicates"], n as u64, "{stats}");
    assert!(stats["failed_requests"].as_u64().unwrap() > 0, "{stats}");
}

/// Every field the Kibana dashboards (`dashboards/api-logs.ndjson`, summarised in
/// `dashboards/fields.json`) aggregate on or query exists in the mapping the real node produced
/// after logship indexed the api's lines, with a type the aggregation can use.
fn dashboard_fields_exist_in(properties: &Value, mapping: &Value) {
    let path = repo().join("dashboards/fields.json");
    let fields: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let numeric = [
        "long",
        "integer",
        "short",
        "byte",
        "double",
        "float",
        "half_float",
        "scaled_float",
    ];
    let field_type = |name: &str| -> String {
        properties[name]["type"]
            .as_str()
            .unwrap_or_else(|| {
                panic!("dashboard field {name} is not in the real mapping: {mapping}")
            })
            .to_owned()
    };
    let aggregated = fields["aggregated"]
        .as_object()
        .expect("fields.json: aggregated");
    assert!(!aggregated.is_empty());
    for (name, aggs) in aggregated {
        let ty = field_type(name);
        for agg in aggs.as_array().unwrap() {
            let ok = match agg.as_str().unwrap() {
                "date_histogram" => ty == "date" || ty == "date_nanos",
                "percentiles" | "avg" | "sum" | "max" | "min" | "range" | "histogram" => {
                    numeric.contains(&ty.as_str())
                }
                // terms and filters need doc values: keyword, numbers, dates, booleans — not text.
                _ => ty != "text",
            };
            assert!(
                ok,
                "dashboard aggregates {name} with {agg}, but it is mapped as {ty}"
            );
        }
    }
    for name in fields["queried"].as_array().expect("fields.json: queried") {
        field_type(name.as_str().unwrap());
    }
    assert_eq!(
        field_type(fields["index_pattern"]["time_field"].as_str().unwrap()),
        "date_nanos"
    );
}
