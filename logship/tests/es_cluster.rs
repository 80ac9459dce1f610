//! A cluster past one machine's single node: the test services' 3-node OpenSearch cluster on
//! loopback (`test-services.sh start-cluster`, started by this test and stopped at its end).
//!
//! A client streams events with acks (resending what was not acked) through `logship run`,
//! whose elasticsearch output lists all three nodes in `hosts`, into an index with 3 shards
//! and one replica each. Mid-stream one node is killed with SIGKILL — the first one in `hosts`
//! and in `logship tail`'s `--url` list — and later started again. Then:
//!
//! - the index holds exactly the number of events sent, their `seq` sum is exact and no
//!   `request_id` is stored twice (the failed node's shard copies were promoted elsewhere,
//!   resent bulks answered 409 on `create`);
//! - the output skipped the dead node (its requests went to the others) and used it again
//!   once it was back (`resurrect_after 2s`);
//! - `logship tail -f` kept following through the failure: it printed the events sent after
//!   the node came back, none twice, and exits 0 on SIGINT.

mod durability_common;
mod es_common;
mod logship_child;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durability_common::{batches, log_fields, seq_sum, wait_exact};
use es_common::*;
use logship::event::EventBatch;
use logship::forward::{ClientConfig, ForwardClient};
use serde_json::{json, Value};

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

const EVENTS: u64 = 9_000;
const PER_BATCH: u64 = 10;

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
  resurrect_after 2s
  <buffer>
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
        hosts = hosts.join(",")
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());

    // logship tail -f over all three nodes.
    let mut tail = Command::new(BIN)
        .args(["tail", "-f", "-n", "0", "--json", "--interval", "0.3"])
        .args(["--url", &cluster.urls.join(","), "--index", &index])
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(Vec::<Value>::new()));
    let p2 = printed.clone();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            p2.lock()
                .unwrap()
                .push(serde_json::from_str(&line).unwrap());
        }
    });
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let n2 = notices.clone();
    let stderr = tail.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            n2.lock().unwrap().push(line);
        }
    });

    // A steady stream: 2 connections, each a batch of 10 every 100 ms (~200 events/s).
    let all = with_request_ids(batches(&run, EVENTS, PER_BATCH, 40), &run);
    let port = Arc::new(AtomicU16::new(ls.port));
    let acked = Arc::new(AtomicU64::new(0));
    let mut feeders = Vec::new();
    for part in split(all, 2) {
        feeders.push(tokio::spawn(paced_feed(
            port.clone(),
            part,
            Duration::from_millis(100),
            acked.clone(),
        )));
    }

    // Kill node 1 (first in hosts and in tail's --url) a third of the way in.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < EVENTS / 3 {
        assert!(Instant::now() < deadline, "stream stalled before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.node("kill-node", 1);
    let killed_at = acked.load(Ordering::SeqCst);
    eprintln!("node 1 killed with {killed_at} events acked");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = acked.load(Ordering::SeqCst) - killed_at;
    cluster.node("start-node", 1);
    eprintln!(
        "node 1 back with {} events acked ({during} while it was down)",
        acked.load(Ordering::SeqCst)
    );
    assert!(during > 0, "the stream stopped while node 1 was down");

    for f in feeders {
        tokio::time::timeout(Duration::from_secs(300), f)
            .await
            .expect("stream finished")
            .unwrap();
    }
    assert_eq!(acked.load(Ordering::SeqCst), EVENTS);
    // Exact count and seq sum on the node that was killed and came back.
    wait_exact(&cluster.urls[0], &index, EVENTS, seq_sum(EVENTS), 240).await;
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

    // The output skipped node 1 while it was down, and used it again once it was back.
    let node1 = cluster.urls[0].clone();
    let failed = log_fields(&ls, "elasticsearch: host failed; skipped until it is due");
    assert!(
        failed.iter().any(|f| f["host"] == node1.as_str()),
        "node 1 never marked failed: {failed:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log_fields(&ls, "elasticsearch: host is back")
        .iter()
        .any(|f| f["host"] == node1.as_str())
    {
        assert!(Instant::now() < deadline, "node 1 never used again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let retried = log_fields(&ls, "bulk delivery failed; will retry");
    eprintln!(
        "{} host failures, {} chunk retries during the failure",
        failed.len(),
        retried.len()
    );

    // tail: every event sent after node 1 came back is printed, and nothing twice.
    let last = EVENTS - 200;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = printed
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d["seq"].as_u64().is_some_and(|s| s >= last))
            .count();
        if n == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tail printed {n} of the last 200; notices: {:?}",
            notices.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Command::new("kill")
        .args(["-INT", &tail.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(tail.wait().unwrap().code(), Some(0));
    let mut ids: Vec<String> = printed
        .lock()
        .unwrap()
        .iter()
        .map(|d| d["request_id"].as_str().unwrap().to_string())
        .collect();
    let printed_n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), printed_n, "tail printed a document twice");
    let notices = notices.lock().unwrap().join("\n");
    eprintln!("tail printed {printed_n} of {EVENTS}; its notices:\n{notices}");
    assert!(
        notices.contains("following through"),
        "tail did not move to another node: {notices}"
    );
    let stats = ls.stop();
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    let _ = http().delete(format!("{es}/{index}")).send().await;
}

/// Adds `request_id: "<run>-<seq>"` to each record (msgpack map of 3 → 4 entries).
fn with_request_ids(all: Vec<EventBatch>, run: &str) -> Vec<EventBatch> {
    all.into_iter()
        .map(|mut b| {
            for e in b.events.iter_mut() {
                let mut r = e.record.to_vec();
                // fixmap 0x83 → 0x84, then append "request_id": "<run>-<seq>"
                assert_eq!(r[0], 0x83);
                r[0] = 0x84;
                let seq = seq_of(&r);
                rmp::encode::write_str(&mut r, "request_id").unwrap();
                rmp::encode::write_str(&mut r, &format!("{run}-{seq}")).unwrap();
                e.record = bytes::Bytes::from(r);
            }
            b
        })
        .collect()
}

/// The `seq` of a record made by `durability_common::batches`.
fn seq_of(record: &[u8]) -> u64 {
    let v: Value =
        serde_json::from_str(&logship::msgpack_json::to_json_string(record).unwrap()).unwrap();
    v["seq"].as_u64().unwrap()
}

/// The batches dealt round robin into `n` parts.
fn split(all: Vec<EventBatch>, n: usize) -> Vec<Vec<EventBatch>> {
    let mut parts: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
    for (i, b) in all.into_iter().enumerate() {
        parts[i % n].push(b);
    }
    parts
}

/// One connection sending `part` in order, one batch per `gap`: each batch (tag
/// `cluster.test`) is sent with `chunk` and kept until its ack arrives; on any error the
/// client reconnects and sends it again. Counts acked events.
async fn paced_feed(
    port: Arc<AtomicU16>,
    part: Vec<EventBatch>,
    gap: Duration,
    acked: Arc<AtomicU64>,
) {
    let mut client: Option<ForwardClient> = None;
    for mut b in part {
        b.tag = "cluster.test".into();
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
                acked.fetch_add(b.len() as u64, Ordering::SeqCst);
                break;
            }
            client = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(gap).await;
    }
}
