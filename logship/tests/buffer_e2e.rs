//! `<buffer>` parameters end to end: `logship run` (a real process) with a file buffer in front
//! of the real OpenSearch node, fed over Forward by a client that keeps each batch until its
//! ack.
//!
//! - `<buffer tag, time>` with `timekey 2s`, `timekey_wait 1s` and no `flush_mode` (so lazy,
//!   as in Fluentd): a low-volume stream arrives within 5 s of each event, because each slice
//!   is flushed at its end plus the wait, not when 8 MiB have accumulated;
//! - the same shape with `timekey 1h`: events of an hour that is over are delivered at once;
//! - `compress gzip`: chunks are compressed on disk; after `kill -9` the restarted process
//!   reads them back and delivers exactly what was acked.

mod durability_common;
mod es_common;
mod logship_child;

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use durability_common::*;
use es_common::{es_url, http, run_id};
use logship::event::{Event, EventBatch, EventTime};
use serde_json::{json, Value};

/// `forward → elasticsearch` with a file buffer keyed by tag and time.
fn timekey_conf(es_port: u16, index: &str, buf: &std::path::Path, timekey: &str) -> String {
    format!(
        r#"<source>
  @type forward
  port 0
  bind 127.0.0.1
</source>
<match buf.**>
  @type elasticsearch
  host 127.0.0.1
  port {es_port}
  index_name {index}
  suppress_type_name true
  <buffer tag, time>
    @type file
    path {path}
    timekey {timekey}
    timekey_wait 1s
    timekey_use_utc true
  </buffer>
</match>
"#,
        path = buf.display()
    )
}

fn event(run: &str, seq: u64, time: EventTime) -> Event {
    let mut r = Vec::new();
    rmp::encode::write_map_len(&mut r, 2).unwrap();
    rmp::encode::write_str(&mut r, "run").unwrap();
    rmp::encode::write_str(&mut r, run).unwrap();
    rmp::encode::write_str(&mut r, "seq").unwrap();
    rmp::encode::write_uint(&mut r, seq).unwrap();
    Event::new(time, Bytes::from(r))
}

/// The `seq` values indexed so far.
async fn seqs(es: &str, index: &str) -> Vec<u64> {
    let c = http();
    let _ = c.post(format!("{es}/{index}/_refresh")).send().await;
    let Ok(r) = c
        .post(format!("{es}/{index}/_search"))
        .json(&json!({"size": 1000, "_source": ["seq"]}))
        .send()
        .await
    else {
        return Vec::new();
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let mut out: Vec<u64> = v["hits"]["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|d| d["_source"]["seq"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timekey_2s_wait_1s_delivers_a_quiet_stream_within_5s() {
    let Some(es) = es_url() else { return };
    let es_port = reqwest::Url::parse(&es).unwrap().port().unwrap();
    let run = run_id();
    let index = format!("buf-timekey-{run}");
    let buf = tempfile::tempdir().unwrap();
    let l = start(&timekey_conf(es_port, &index, buf.path(), "2s"));
    let mut client = l.client().await;
    const N: u64 = 8;
    let mut sent_at = Vec::new();
    let mut arrived_at: Vec<Option<Instant>> = vec![None; N as usize];
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    // One event every 500 ms (a quiet service), while watching the index.
    while arrived_at.iter().any(Option::is_none) {
        if (sent_at.len() as u64) < N
            && start.elapsed() >= Duration::from_millis(500) * sent_at.len() as u32
        {
            let seq = sent_at.len() as u64;
            client
                .send_batch(&EventBatch::new(
                    "buf.quiet",
                    vec![event(&run, seq, EventTime::now())],
                ))
                .await
                .unwrap();
            sent_at.push(Instant::now());
        }
        for s in seqs(&es, &index).await {
            if let Some(a) = arrived_at.get_mut(s as usize) {
                a.get_or_insert_with(Instant::now);
            }
        }
        assert!(Instant::now() < deadline, "arrived: {arrived_at:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let latencies: Vec<Duration> = sent_at
        .iter()
        .zip(&arrived_at)
        .map(|(s, a)| a.unwrap().saturating_duration_since(*s))
        .collect();
    eprintln!("send → searchable: {latencies:?}");
    for (i, l) in latencies.iter().enumerate() {
        assert!(*l < Duration::from_secs(5), "event {i} took {l:?}");
    }
    assert_eq!(seqs(&es, &index).await, (0..N).collect::<Vec<_>>());
    drop(l);
    delete_index(&es, &index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timekey_1h_without_flush_mode_delivers_an_hour_that_is_over() {
    let Some(es) = es_url() else { return };
    let es_port = reqwest::Url::parse(&es).unwrap().port().unwrap();
    let run = run_id();
    let index = format!("buf-hour-{run}");
    let buf = tempfile::tempdir().unwrap();
    // plus a parameter without effect: named at start-up
    let conf = timekey_conf(es_port, &index, buf.path(), "1h").replace(
        "    timekey_use_utc true\n",
        "    timekey_use_utc true\n    flush_thread_interval 0.5\n",
    );
    let l = start(&conf);
    let note: Vec<Value> = l
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| {
            v["fields"]["message"] == "configuration parameter has no effect in logship"
                && v["fields"]["parameter"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("flush_thread_interval: "))
        })
        .collect();
    assert_eq!(note.len(), 1, "{note:?}");
    assert_eq!(note[0]["level"], "INFO");
    assert!(
        note[0]["fields"]["parameter"]
            .as_str()
            .unwrap()
            .contains("fluentd.conf:18 in <buffer>"),
        "{note:?}"
    );
    let mut client = l.client().await;
    // Events of the previous hour (its slice ended, plus timekey_wait): due at once.
    let hour_ago = EventTime::new(EventTime::now().secs - 3600, 0);
    let events = (0..5).map(|i| event(&run, i, hour_ago)).collect();
    client
        .send_batch(&EventBatch::new("buf.hour", events))
        .await
        .unwrap();
    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(30);
    while seqs(&es, &index).await.len() < 5 {
        assert!(Instant::now() < deadline, "the past hour was not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("past hour delivered in {:?}", sent.elapsed());
    assert_eq!(seqs(&es, &index).await, vec![0, 1, 2, 3, 4]);
    drop(l);
    delete_index(&es, &index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_chunks_are_smaller_on_disk_and_recover_after_kill_9() {
    let Some(es) = es_url() else { return };
    const N: u64 = 4_000;
    const PAD: usize = 400;
    let run = run_id();
    let index = format!("buf-gzip-{run}");
    let buf = tempfile::tempdir().unwrap();
    // The node is unreachable: everything stays in the buffer.
    let proxy = CutProxy::start(host_port(&es), false).await;
    let conf = config(
        proxy.port,
        &index,
        &BufCfg {
            path: buf.path(),
            total_limit: "256m",
            chunk_limit: "1m",
            overflow: "block",
            extra: "compress gzip",
        },
    );
    let mut l = start(&conf);
    let acked = Arc::new(AtomicU64::new(0));
    tokio::time::timeout(
        Duration::from_secs(120),
        feed(
            Arc::new(AtomicU16::new(l.port)),
            batches(&run, N, 200, PAD),
            2,
            acked.clone(),
        ),
    )
    .await
    .expect("all acked while the node is unreachable");
    assert_eq!(acked.load(Ordering::SeqCst), N);
    let (on_disk, files) = chunk_bytes(buf.path());
    let records = N * PAD as u64;
    eprintln!("{N} events ({records} bytes of padding) in {files} files, {on_disk} bytes");
    assert!(
        on_disk * 4 < records,
        "compressed chunks: {on_disk} bytes on disk for {records} bytes of records"
    );
    kill9(&mut l);

    proxy.set_up(true);
    let l2 = start(&conf);
    let recovered = log_fields(&l2, "buffer recovery: resumed chunks left on disk");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0]["records"], N);
    wait_exact(&es, &index, N, seq_sum(N), 240, buf.path()).await;
    delete_index(&es, &index).await;
}
