//! Throughput of logship → OpenSearch against the same documents pre-encoded as `_bulk`
//! bodies and posted by a minimal loader (the node's own ceiling). A bench binary (not a test):
//! it needs a running node, e.g. from `scripts/test-services.sh start`:
//!
//! ```sh
//! eval "$(scripts/test-services.sh start)"
//! cargo bench -p logship --bench es_bench
//! ```
//!
//! Prints one tab-separated line per variant: `variant events secs docs_per_s`.

#[path = "../tests/es_common/mod.rs"]
mod es_common;
#[path = "../tests/logship_child/mod.rs"]
mod logship_child;

use std::time::{Duration, Instant};

use es_common::*;
use logship::event::{Event, EventBatch, EventTime};
use serde_json::{json, Value};

/// Documents per variant: `ES_BENCH_EVENTS` (default 200,000; `scripts/bench.sh es` uses fewer
/// so that each run stays short on the shared machine).
static N: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("ES_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
});
const BATCH: usize = 1_000;

async fn wait_index_count(es: &str, index: &str, n: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = http();
        let _ = c.post(format!("{es}/{index}/_refresh")).send().await;
        let v: Value = match c.get(format!("{es}/{index}/_count")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if v["count"].as_u64() == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{index}: {v} of {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn events(run: &str, base: EventTime) -> Vec<(EventTime, String)> {
    (0..*N)
        .map(|i| {
            let t = EventTime::new(
                base.secs + (i / 1_000_000) as i64,
                (i % 1_000_000) as u32 * 1000,
            );
            (t, bunyan_line(run, i, t, json!(200)))
        })
        .collect()
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench_logship_vs_preencoded_bulk());
}

async fn bench_logship_vs_preencoded_bulk() {
    let Some(es) = es_url() else { return };
    let _g = Engine::OpenSearch.lock().lock().await;
    let run = run_id();
    let evs = events(&run, EventTime::now());
    let docker_id = "4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a";

    // Baseline: the documents logship would write, pre-encoded into ~5 MB `_bulk` bodies,
    // posted one after another by reqwest (a tiny loader; curl would be the same). It runs
    // twice, before and after logship, and logship is compared with the mean of the two: the
    // node speeds up as it warms (JIT, caches, segment merges), so whichever variant ran first
    // on a cold node used to lose. A short untimed warm-up goes first.
    let c = http();
    // Indices an interrupted earlier run left behind would only fill the node's heap.
    let _ = c.delete(format!("{es}/fluentd-bench-*")).send().await;
    let warm = format!("fluentd-bench-warmup-{run}");
    let n_warm = (*N / 5).min(20_000);
    post_bulk(&es, &preencoded(&evs[..n_warm], &warm, &run, docker_id)).await;
    let _ = c.delete(format!("{es}/{warm}")).send().await;
    let index_b = format!("fluentd-bench-bulk-{run}");
    let bodies = preencoded(&evs, &index_b, &run, docker_id);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let t0 = Instant::now();
    post_bulk(&es, &bodies).await;
    wait_index_count(&es, &index_b, *N as u64, 600).await;
    let bulk_secs_before = t0.elapsed().as_secs_f64();
    drop(bodies);

    // logship: fluentd.conf (parser filter, template, file buffer, 2 flush threads), fed
    // with PackedForward batches of 1000 Docker records, each batch acked.
    let index_l = format!("fluentd-bench-ls-{run}");
    let ls = Logship::start(
        &es,
        &[
            (
                "  logstash_format true\n",
                &format!("  logstash_format false\n  index_name {index_l}\n"),
            ),
            ("request_timeout 15s", "request_timeout 60s"),
        ],
    );
    let batches: Vec<EventBatch> = evs
        .chunks(BATCH)
        .map(|c| {
            EventBatch::new(
                "docker.api",
                c.iter()
                    .map(|(t, line)| Event::new(*t, docker_record(line, false)))
                    .collect(),
            )
        })
        .collect();
    let mut client = ls.client().await;
    let t0 = Instant::now();
    for b in &batches {
        client.send_batch(b).await.unwrap();
    }
    let acked = t0.elapsed().as_secs_f64();
    wait_index_count(&es, &index_l, *N as u64, 600).await;
    let ls_secs = t0.elapsed().as_secs_f64();
    drop(client);
    let stats = ls.stop();

    let index_b2 = format!("fluentd-bench-bulk2-{run}");
    let bodies = preencoded(&evs, &index_b2, &run, docker_id);
    let t0 = Instant::now();
    post_bulk(&es, &bodies).await;
    wait_index_count(&es, &index_b2, *N as u64, 600).await;
    let bulk_secs_after = t0.elapsed().as_secs_f64();
    let rate_before = *N as f64 / bulk_secs_before;
    let rate_after = *N as f64 / bulk_secs_after;
    let bulk_rate = (rate_before + rate_after) / 2.0;
    let bulk_secs = *N as f64 / bulk_rate;

    println!("variant\tevents\tsecs\tdocs_per_s");
    println!(
        "bulk_preencoded({} MB, mean of {rate_before:.0} before and {rate_after:.0} after logship)\t{}\t{bulk_secs:.2}\t{bulk_rate:.0}",
        bytes >> 20,
        *N,
    );
    println!(
        "logship(acked in {acked:.2}s)\t{}\t{ls_secs:.2}\t{:.0}",
        *N,
        *N as f64 / ls_secs
    );
    println!("logship stats: {stats}");
    let _ = c.delete(format!("{es}/{index_b}")).send().await;
    let _ = c.delete(format!("{es}/{index_l}")).send().await;
    let _ = c.delete(format!("{es}/{index_b2}")).send().await;
}

/// The documents of `evs` as logship writes them, in `_bulk` bodies of about 5 MB for `index`.
fn preencoded(
    evs: &[(EventTime, String)],
    index: &str,
    run: &str,
    docker_id: &str,
) -> Vec<Vec<u8>> {
    let mut bodies = vec![Vec::new()];
    for (i, (t, line)) in evs.iter().enumerate() {
        let mut doc: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        doc.remove("time");
        let mut ts = Vec::new();
        logship::output::elasticsearch::encoder::write_rfc3339_nanos(&mut ts, *t);
        doc.insert("@timestamp".into(), json!(String::from_utf8(ts).unwrap()));
        doc.insert("tag".into(), json!("docker.api"));
        doc.insert("container_id".into(), json!(docker_id));
        doc.insert("container_name".into(), json!("/api"));
        doc.insert("source".into(), json!("stdout"));
        doc.insert("log".into(), json!(line));
        let b = bodies.last_mut().unwrap();
        b.extend_from_slice(
            json!({"create": {"_index": index, "_id": format!("{run}-{i}")}})
                .to_string()
                .as_bytes(),
        );
        b.push(b'\n');
        b.extend_from_slice(Value::Object(doc).to_string().as_bytes());
        b.push(b'\n');
        if b.len() > 5 << 20 {
            bodies.push(Vec::new());
        }
    }
    bodies
}

/// Posts `bodies` one after another; every item must succeed. A whole request answered 429
/// (the node's circuit breaker: nothing of it was indexed) is sent again after a pause, as
/// logship itself would do.
async fn post_bulk(es: &str, bodies: &[Vec<u8>]) {
    let c = http();
    for b in bodies {
        let mut attempt = 0;
        loop {
            let r = c
                .post(format!("{es}/_bulk"))
                .header("content-type", "application/x-ndjson")
                .body(b.clone())
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS && attempt < 20 {
                attempt += 1;
                eprintln!("es_bench: _bulk answered 429, again in 1 s: {v}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(v["errors"], false, "_bulk answered {status}: {v}");
            break;
        }
    }
}
