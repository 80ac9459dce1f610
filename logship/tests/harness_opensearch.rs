//! Harness check: the OpenSearch node that `scripts/test-services.sh start` runs is
//! reachable at `TEST_ELASTICSEARCH_URL` and does what the Elasticsearch output needs:
//! `_bulk`, `_cat/indices`, `_search` and index deletion.
//!
//! Without the URL these tests skip (print a reason and return), unless
//! `REQUIRE_SERVICES=1` (set by `scripts/test.sh`), when they fail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The URL in `var` without a trailing slash; `None` means "skip this test". Panics if
/// it is missing while `REQUIRE_SERVICES=1`.
fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ if std::env::var("REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{var} is not set but REQUIRE_SERVICES=1 (start them: scripts/test-services.sh start)")
        }
        _ => {
            eprintln!(
                "skipping: {var} is not set (run scripts/test.sh to start the test services)"
            );
            None
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build HTTP client")
}

/// Sends a request and returns the JSON body, failing on a non-2xx status.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.expect("request to OpenSearch");
    let status = resp.status();
    let body = resp.text().await.expect("response body");
    assert!(status.is_success(), "HTTP {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn root_reports_opensearch_version() {
    let Some(url) = service_url("TEST_ELASTICSEARCH_URL") else {
        return;
    };
    let root = json_of(client().get(format!("{url}/"))).await;
    assert_eq!(
        root["version"]["distribution"], "opensearch",
        "GET /: {root}"
    );
    let number = root["version"]["number"].as_str().unwrap_or_default();
    assert!(
        number.starts_with("2."),
        "unexpected OpenSearch version in {root}"
    );
}

#[tokio::test]
async fn bulk_index_then_list_search_and_delete() {
    let Some(url) = service_url("TEST_ELASTICSEARCH_URL") else {
        return;
    };
    let http = client();
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
    let bulk = json_of(
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
    let cat = json_of(http.get(format!("{url}/_cat/indices?format=json"))).await;
    let entry = cat
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["index"] == index.as_str()))
        .unwrap_or_else(|| panic!("{index} not in _cat/indices: {cat}"));
    assert_eq!(entry["docs.count"], "3", "{entry}");

    // _search finds them.
    let all = json_of(http.get(format!("{url}/{index}/_search"))).await;
    assert_eq!(all["hits"]["total"]["value"], 3, "{all}");
    let started = json_of(
        http.post(format!("{url}/{index}/_search"))
            .json(&json!({"query": {"match": {"message": "started"}}})),
    )
    .await;
    assert_eq!(started["hits"]["total"]["value"], 2, "{started}");

    // Delete the index.
    let deleted = json_of(http.delete(format!("{url}/{index}"))).await;
    assert_eq!(deleted["acknowledged"], true, "{deleted}");
    let gone = http
        .get(format!("{url}/{index}"))
        .send()
        .await
        .expect("GET index");
    assert_eq!(gone.status(), reqwest::StatusCode::NOT_FOUND);
}
