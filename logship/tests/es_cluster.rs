//! A cluster past one machine's single node: the test services' 3-node OpenSearch cluster on
//! loopback (`test-services.sh start-cluster`, started by this test and stopped at its end).
//!
//! A client streams events with acks (resending what was not acked) through `logship run`,
//! whose elasticsearch output (file buffer, as in aggregator.conf) lists all three nodes in
//! `hosts`, into an index with 3 shards
//! and one replica each. Mid-stream one node is killed with SIGKILL — the first one in `hosts`
//! and in `logship tail`'s `--url` list — and later started again. Then:
//!
//! - the index holds exactly the number of events sent, their `seq` sum is exact and no
//!   `request_id` is stored twice (the failed node's shard copies were promoted elsewhere,
//!   resent bulks answered 409 on `create`);
//! - the output skipped the dead node (its requests went to the others) and used it again
//!   once it was back (`resurrect_after 1s`);
//! - `logship tail -f` kept following through the failure: it printed the events sent after
//!   the node came back, none twice, and exits 0 on SIGINT;
//! - node discovery: an output told only one node learns all three from `GET _nodes/http`.

mod durability_common;
mod es_common;
mod logship_child;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durability_common::{log_fields, wait_exact};
use es_common::*;
use logship::event::{Event, EventBatch, EventTime};
use logship::forward::client::encode_record_from_json;
use logship::forward::{ClientConfig, ForwardClient};
use serde_json::json;

/// The running cluster; `stop-cluster` when dropped (also when the test fails).
struct Cluster {
    script: String,
    urls: Vec<String>,
}

impl Cluster {
    fn start(script: &str) -> Cluster {
        let t0 = Instant::now();
        let out = Command::new(script).arg("start-cluster").output().unwrap();
        assert!(
            out.status.success(),
            "start-cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let urls = stdout
            .lines()
            .find_map(|l| l.strip_prefix("TEST_OPENSEARCH_CLUSTER_URLS="))
            .expect("TEST_OPENSEARCH_CLUSTER_URLS in start-cluster's output")
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>();
        assert_eq!(urls.len(), 3);
        eprintln!(
            "cluster up in {:.1} s: {urls:?}",
            t0.elapsed().as_secs_f64()
        );
        Cluster {
            script: script.to_string(),
            urls,
        }
    }

    fn node(&self, cmd: &str, n: usize) {
        let out = Command::new(&self.script)
            .args([cmd, &n.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd} {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).arg("stop-cluster").output();
    }
}

const PER_BATCH: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_stream_loses_and_duplicates_nothing_and_tail_follows() {
    let Some(script) = Engine::services_script() else {
        return;
    };
    let cluster = Cluster::start(&script);
    let es = cluster.urls[0].clone();
    let run = run_id();
    let index = format!("cluster-{run}");
    json(http().put(format!("{es}/{index}")).json(&json!({
        "settings": {"number_of_shards": 3, "number_of_replicas": 1},
        "mappings": {"properties": {
            "@timestamp": {"type": "date_nanos"},
            "run": {"type": "keyword"}, "request_id": {"type": "keyword"},
            "seq": {"type": "long"}}}
    })))
    .await;
    json(http().get(format!(
        "{es}/_cluster/health/{index}?wait_for_status=green&timeout=60s"
    )))
    .await;

    let buf = tempfile::tempdir().unwrap();
    let hosts: Vec<&str> = cluster
        .urls
        .iter()
        .map(|u| u.trim_start_matches("http://"))
        .collect();
    let conf = format!(
        r#"<source>
  @type forward
  port 0
  bind 127.0.0.1
</source>
<match cluster.**>
  @type elasticsearch
  @id out_cluster
  hosts {hosts}
  index_name {index}
  include_timestamp true
  request_timeout 5s
  resurrect_after 1s
  <buffer>
    @type file
    path {buffer}
    flush_mode interval
    flush_interval 0.2s
    chunk_limit_records 200
    flush_thread_count 2
    retry_wait 0.2s
    retry_max_interval 1s
    retry_forever true
  </buffer>
</match>
"#,
        hosts = hosts.join(","),
        buffer = buf.path().display(),
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());

    // logship tail -f over all three nodes.
    let tail = TailFollow::start(&["--url", &cluster.urls.join(","), "--index", &index]);

    // A steady stream on one connection: a batch of 20 every 100 ms (~200 events/s), until
    // told to stop.
    let port = Arc::new(AtomicU16::new(ls.port));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = tokio::spawn(paced_feed(
        port.clone(),
        run.clone(),
        Duration::from_millis(100),
        acked.clone(),
        stop.clone(),
    ));

    // Kill node 1 (first in hosts and in tail's --url) once 2,000 events are in.
    let node1 = cluster.urls[0].clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < 2_000 {
        assert!(Instant::now() < deadline, "stream stalled before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.node("kill-node", 1);
    let killed_at = acked.load(Ordering::SeqCst);
    eprintln!("node 1 killed with {killed_at} events acked");
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.node("start-node", 1);
    eprintln!(
        "node 1 back with {} events acked ({} while it was down)",
        acked.load(Ordering::SeqCst),
        acked.load(Ordering::SeqCst) - killed_at
    );
    // The output skipped node 1 while it was down (it kept acking: the stream went on) and
    // uses it again once it is due (resurrect_after 1s, doubled per failure, at most 32 s).
    let failed = log_fields(&ls, "elasticsearch: host failed; skipped until it is due");
    assert!(
        failed.iter().any(|f| f["host"] == node1.as_str()),
        "node 1 never marked failed: {failed:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !log_fields(&ls, "elasticsearch: host is back")
        .iter()
        .any(|f| f["host"] == node1.as_str())
    {
        assert!(Instant::now() < deadline, "node 1 never used again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A little more of the stream with all three nodes, then stop.
    let back_at = acked.load(Ordering::SeqCst);
    while acked.load(Ordering::SeqCst) < back_at + 400 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (sent, sum) = tokio::time::timeout(Duration::from_secs(120), feeder)
        .await
        .expect("stream finished")
        .unwrap();
    eprintln!(
        "{sent} events sent; {} host failures, {} chunk retries",
        failed.len(),
        log_fields(&ls, "bulk delivery failed; will retry").len()
    );
    // Exact count and seq sum, read on the node that was killed and came back.
    wait_exact(&node1, &index, sent, sum, 240, buf.path()).await;
    let dups = json(http().post(format!("{es}/{index}/_search")).json(&json!({
        "size": 0,
        "aggs": {"d": {"terms": {"field": "request_id", "min_doc_count": 2, "size": 10}}}
    })))
    .await;
    assert_eq!(
        dups["aggregations"]["d"]["buckets"],
        json!([]),
        "duplicated request_id: {dups}"
    );

    // tail: every event sent after node 1 came back is printed, and nothing twice.
    let last = sent - 200;
    tail.wait_until(60, "the last 200 events", |p| {
        p.iter()
            .filter(|d| d["seq"].as_u64().is_some_and(|s| s >= last))
            .count()
            == 200
    })
    .await;
    let printed = tail.printed();
    let notices = tail.notices();
    assert_eq!(tail.interrupt(), Some(0));
    let mut ids: Vec<&str> = printed
        .iter()
        .map(|d| d["request_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), printed.len(), "tail printed a document twice");
    eprintln!(
        "tail printed {} of {sent}; its notices:\n{notices}",
        printed.len()
    );
    assert!(
        notices.contains("following through"),
        "tail did not move to another node: {notices}"
    );
    let stats = ls.stop();
    assert_eq!(stats["dead_lettered"], 0, "{stats}");

    // Node discovery: an output that is told only node 2 learns all three from `_nodes/http`
    // (`reload_connections`, here every 2 requests).
    let conf = format!(
        "<source>\n  @type forward\n  port 0\n  bind 127.0.0.1\n</source>\n<match cluster.**>\n  @type elasticsearch\n  hosts {}\n  index_name {index}-discovery\n  reload_after 2\n  <buffer>\n    flush_interval 0.2\n  </buffer>\n</match>\n",
        hosts[1]
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());
    let mut client = ls.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let discovered = loop {
        let t = EventTime::now();
        client
            .send_batch(&EventBatch::new(
                "cluster.test",
                vec![Event::new(t, record(&run, 0))],
            ))
            .await
            .unwrap();
        if let Some(d) = log_fields(&ls, "elasticsearch: node discovery (GET _nodes/http)").pop() {
            break d;
        }
        assert!(Instant::now() < deadline, "no node discovery");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let found = discovered["hosts"].as_str().unwrap_or_default().to_string();
    for url in &cluster.urls {
        assert!(
            found.contains(url.as_str()),
            "{url} not discovered: {found}"
        );
    }
    drop(client);
    ls.stop();
    let _ = http().delete(format!("{es}/{index}")).send().await;
}

/// A record as the api's request logs carry: `run`, `seq`, `request_id` and some padding.
fn record(run: &str, seq: u64) -> bytes::Bytes {
    encode_record_from_json(&json!({
        "run": run, "seq": seq, "request_id": format!("{run}-{seq}"), "msg": "x".repeat(40)
    }))
}

/// One connection streaming batches of `PER_BATCH` events (seq 0, 1, 2, …), one batch per
/// `gap`, until `stop`: each batch is sent with `chunk` and kept until its ack arrives; on any
/// error the client reconnects and sends it again. Returns how many events were sent and the
/// sum of their `seq`s; counts acked events as it goes.
async fn paced_feed(
    port: Arc<AtomicU16>,
    run: String,
    gap: Duration,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> (u64, u64) {
    let mut client: Option<ForwardClient> = None;
    let mut next = 0u64;
    let mut sum = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let t = EventTime::now();
        let b = EventBatch::new(
            "cluster.test",
            (next..next + PER_BATCH)
                .map(|seq| Event::new(t, record(&run, seq)))
                .collect(),
        );
        loop {
            if client.is_none() {
                client = ForwardClient::connect(ClientConfig {
                    addr: format!("127.0.0.1:{}", port.load(Ordering::SeqCst)),
                    require_ack: true,
                    timeout: Duration::from_secs(60),
                    ..Default::default()
                })
                .await
                .ok();
            }
            let sent = match client.as_mut() {
                Some(c) => c.send_batch(&b).await.is_ok(),
                None => false,
            };
            if sent {
                acked.fetch_add(PER_BATCH, Ordering::SeqCst);
                break;
            }
            client = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sum += (next..next + PER_BATCH).sum::<u64>();
        next += PER_BATCH;
        tokio::time::sleep(gap).await;
    }
    (next, sum)
}
