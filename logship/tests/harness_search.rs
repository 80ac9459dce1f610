//! Harness check: each search engine that `scripts/test-services.sh start` runs (OpenSearch
//! 2.19 at `TEST_ELASTICSEARCH_URL`, Elasticsearch 7.10.2 at `TEST_ELASTICSEARCH7_URL`,
//! Elasticsearch 8.15.5 at `TEST_ELASTICSEARCH8_URL`) is
//! reachable, is the product and version it claims, and does what the Elasticsearch output
//! needs: `_bulk`, `_cat/indices`, `_search` and index deletion.
//!
//! Without a URL these tests skip (print a reason and return), unless `REQUIRE_SERVICES=1`
//! (set by `scripts/test.sh`), when they fail.

mod es_common;
mod logship_child;

use std::time::{SystemTime, UNIX_EPOCH};

use es_common::{http, json, on_every_engine, Engine};
use serde_json::json;

on_every_engine!(
    root_reports_the_engine_and_its_version,
    bulk_index_then_list_search_and_delete,
);

async fn root_reports_the_engine_and_its_version(engine: Engine) {
    let Some(url) = engine.url() else {
        return;
    };
    let resp = http().get(format!("{url}/")).send().await.unwrap();
    let product_header = resp.headers().get("x-elastic-product").cloned();
    let root: serde_json::Value = resp.json().await.unwrap();
    let number = root["version"]["number"].as_str().unwrap_or_default();
    match engine {
        Engine::OpenSearch => {
            assert_eq!(root["version"]["distribution"], "opensearch", "{root}");
            assert!(number.starts_with("2.19."), "{root}");
        }
        Engine::Elasticsearch7 => {
            assert_eq!(number, "7.10.2", "{root}");
            assert!(root["version"].get("distribution").is_none(), "{root}");
            assert_eq!(root["tagline"], "You Know, for Search");
            // 7.10 predates the X-Elastic-Product header (7.14)
            assert!(product_header.is_none(), "{product_header:?}");
        }
        Engine::Elasticsearch8 => {
            assert_eq!(number, "8.15.5", "{root}");
            assert!(root["version"].get("distribution").is_none(), "{root}");
            assert_eq!(root["tagline"], "You Know, for Search");
            assert_eq!(
                product_header.as_ref().and_then(|h| h.to_str().ok()),
                Some("Elasticsearch")
            );
        }
    }
}

async fn bulk_index_then_list_search_and_delete(engine: Engine) {
    let Some(url) = engine.url() else {
        return;
    };
    let http = http();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let index = format!("harness-{}-{nanos}", std::process::id());

    // _bulk: one action line and one document line each, newline-terminated.
    let docs = [
        json!({"message": "alpha started", "level": "info", "n": 1}),
        json!({"message": "beta failed", "level": "error", "n": 2}),
        json!({"message": "gamma started", "level": "info", "n": 3}),
    ];
    let mut body = String::new();
    for doc in &docs {
        body.push_str(&json!({"index": {"_index": &index}}).to_string());
        body.push('\n');
        body.push_str(&doc.to_string());
        body.push('\n');
    }
    let bulk = json(
        http.post(format!("{url}/_bulk?refresh=true"))
            .header("content-type", "application/x-ndjson")
            .body(body),
    )
    .await;
    assert_eq!(bulk["errors"], false, "bulk reported errors: {bulk}");
    assert_eq!(
        bulk["items"].as_array().map(Vec::len),
        Some(docs.len()),
        "{bulk}"
    );

    // _cat/indices lists the new index with its documents.
    let cat = json(http.get(format!("{url}/_cat/indices?format=json"))).await;
    let entry = cat
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["index"] == index.as_str()))
        .unwrap_or_else(|| panic!("{index} not in _cat/indices: {cat}"));
    assert_eq!(entry["docs.count"], "3", "{entry}");

    // _search finds them.
    let all = json(http.get(format!("{url}/{index}/_search"))).await;
    assert_eq!(all["hits"]["total"]["value"], 3, "{all}");
    let started = json(
        http.post(format!("{url}/{index}/_search"))
            .json(&json!({"query": {"match": {"message": "started"}}})),
    )
    .await;
    assert_eq!(started["hits"]["total"]["value"], 2, "{started}");

    // Delete the index.
    let deleted = json(http.delete(format!("{url}/{index}"))).await;
    assert_eq!(deleted["acknowledged"], true, "{deleted}");
    let gone = http
        .get(format!("{url}/{index}"))
        .send()
        .await
        .expect("GET index");
    assert_eq!(gone.status(), reqwest::StatusCode::NOT_FOUND);
}
