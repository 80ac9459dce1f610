//! Shared by the `durability_*` fault tests: a `logship run` child with an elasticsearch output
//! on a file buffer, a resending Forward client that keeps every batch until its ack arrives,
//! a TCP proxy in front of OpenSearch that can be cut, and exact-count queries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use logship::event::{Event, EventBatch, EventTime};
use logship::forward::{ClientConfig, ForwardClient};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::es_common::{http, json, Logship};

/// Buffer parameters of [`config`].
pub struct BufCfg<'a> {
    pub path: &'a Path,
    pub total_limit: &'a str,
    pub chunk_limit: &'a str,
    pub overflow: &'a str,
    pub extra: &'a str,
}

/// `forward (port 0) → elasticsearch (index INDEX at 127.0.0.1:ES_PORT)` with a file buffer.
pub fn config(es_port: u16, index: &str, b: &BufCfg<'_>) -> String {
    format!(
        r#"<source>
  @type forward
  port 0
  bind 127.0.0.1
</source>
<match dur.**>
  @type elasticsearch
  @id out_es
  host 127.0.0.1
  port {es_port}
  scheme http
  index_name {index}
  suppress_type_name true
  request_timeout 10s
  <buffer>
    @type file
    path {path}
    flush_mode interval
    flush_interval 1s
    chunk_limit_size {chunk}
    total_limit_size {total}
    flush_thread_count 2
    retry_wait 1s
    retry_max_interval 2s
    retry_forever true
    overflow_action {overflow}
    {extra}
  </buffer>
</match>
"#,
        path = b.path.display(),
        chunk = b.chunk_limit,
        total = b.total_limit,
        overflow = b.overflow,
        extra = b.extra,
    )
}

/// Starts `logship run` on `conf` (panics with its stderr if it does not start listening).
pub fn start(conf: &str) -> Logship {
    Logship::start_conf("http://127.0.0.1:1", conf, tempfile::tempdir().unwrap())
}

/// SIGKILL, and wait for the process to be gone.
pub fn kill9(l: &mut Logship) {
    let _ = l.child.kill();
    let _ = l.child.wait();
}

/// SIGTERM; the exit status once the process ends (panics after `secs`).
pub fn sigterm(l: &mut Logship, secs: u64) -> std::process::ExitStatus {
    let pid = l.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = l.child.try_wait().unwrap() {
            // its last log lines (the shutdown's) are read by another thread
            crate::logship_child::wait_stderr_closed(&l.lines, 10);
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "logship did not exit within {secs}s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Peak resident memory (VmHWM) of a running process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// The JSON log lines of `l` whose message is `msg` (their `fields`).
pub fn log_fields(l: &Logship, msg: &str) -> Vec<Value> {
    l.lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["fields"]["message"] == msg)
        .map(|v| {
            let mut f = v["fields"].clone();
            f["level"] = v["level"].clone();
            f
        })
        .collect()
}

/// `n` events of `{"run":RUN,"seq":I,"msg":PAD}` in batches of `per_batch`, tag `dur.test`.
pub fn batches(run: &str, n: u64, per_batch: u64, pad: usize) -> Vec<EventBatch> {
    let pad = "x".repeat(pad);
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + per_batch).min(n);
        let events = (i..end)
            .map(|seq| {
                let mut r = Vec::with_capacity(pad.len() + 48);
                rmp::encode::write_map_len(&mut r, 3).unwrap();
                rmp::encode::write_str(&mut r, "run").unwrap();
                rmp::encode::write_str(&mut r, run).unwrap();
                rmp::encode::write_str(&mut r, "seq").unwrap();
                rmp::encode::write_uint(&mut r, seq).unwrap();
                rmp::encode::write_str(&mut r, "msg").unwrap();
                rmp::encode::write_str(&mut r, &pad).unwrap();
                Event::new(
                    EventTime::new(1_764_000_000 + (seq / 1000) as i64, seq as u32),
                    Bytes::from(r),
                )
            })
            .collect();
        out.push(EventBatch::new("dur.test", events));
        i = end;
    }
    out
}

/// Sum of 0..n (what the `seq` sum of a complete, duplicate-free index is).
pub fn seq_sum(n: u64) -> u64 {
    n * (n.saturating_sub(1)) / 2
}

/// A client that resends: over `conns` connections to whatever port `port` holds at the
/// moment, it sends each batch with `chunk` and keeps it until its ack arrives; on any error
/// it reconnects and sends the same batch again. Counts acked events in `acked`.
pub async fn feed(port: Arc<AtomicU16>, all: Vec<EventBatch>, conns: usize, acked: Arc<AtomicU64>) {
    let mut parts: Vec<Vec<EventBatch>> = (0..conns).map(|_| Vec::new()).collect();
    for (i, b) in all.into_iter().enumerate() {
        parts[i % conns].push(b);
    }
    let tasks: Vec<_> = parts
        .into_iter()
        .map(|part| {
            let port = port.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                let mut client: Option<ForwardClient> = None;
                for b in part {
                    loop {
                        if client.is_none() {
                            let p = port.load(Ordering::SeqCst);
                            client = ForwardClient::connect(ClientConfig {
                                addr: format!("127.0.0.1:{p}"),
                                require_ack: true,
                                timeout: Duration::from_secs(60),
                                ..Default::default()
                            })
                            .await
                            .ok();
                            if client.is_none() {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        }
                        let c = client.as_mut().expect("connected");
                        match c.send_batch(&b).await {
                            Ok(()) => {
                                acked.fetch_add(b.len() as u64, Ordering::SeqCst);
                                break;
                            }
                            Err(_) => {
                                client = None;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// `(count, sum of seq)` of `index` after a refresh (0s if it does not exist yet).
pub async fn count_and_sum(es: &str, index: &str) -> (u64, u64) {
    let c = http();
    let _ = c.post(format!("{es}/{index}/_refresh")).send().await;
    let Ok(r) = c
        .post(format!("{es}/{index}/_search"))
        .json(
            &json!({"size": 0, "track_total_hits": true, "aggs": {"s": {"sum": {"field": "seq"}}}}),
        )
        .send()
        .await
    else {
        return (0, 0);
    };
    if !r.status().is_success() {
        return (0, 0);
    }
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        v["hits"]["total"]["value"].as_u64().unwrap_or(0),
        v["aggregations"]["s"]["value"].as_f64().unwrap_or(0.0) as u64,
    )
}

/// Waits until `index` holds exactly `n` documents whose `seq` sum is `sum` (panics after
/// `secs`, or at once if there are more than `n`), then until the buffer at `buf` holds no
/// chunk file (logship has nothing left to deliver), and checks the count again.
pub async fn wait_exact(es: &str, index: &str, n: u64, sum: u64, secs: u64, buf: &Path) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (c, s) = count_and_sum(es, index).await;
        assert!(c <= n, "more documents than events: {c} > {n}");
        if c == n {
            assert_eq!(
                s, sum,
                "{n} documents but the seq sum differs: duplicates and losses"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {c} of {n} documents after {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_drained(buf, deadline).await;
    assert_eq!(
        count_and_sum(es, index).await,
        (n, sum),
        "count changed once the buffer was drained"
    );
}

/// Waits until the buffer directory `buf` holds no chunk file (panics at `deadline`).
pub async fn wait_drained(buf: &Path, deadline: Instant) {
    loop {
        let (bytes, files) = chunk_bytes(buf);
        if files == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{files} chunk files ({bytes} bytes) still in {}",
            buf.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes `index` (best effort, at the end of a test).
pub async fn delete_index(es: &str, index: &str) {
    let _ = http().delete(format!("{es}/{index}")).send().await;
}

/// Bytes of the chunk files in a buffer directory and their number.
pub fn chunk_bytes(dir: &Path) -> (u64, usize) {
    let mut total = 0;
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p: PathBuf = e.path();
        if p.extension().is_some_and(|x| x == "chunk") {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
            n += 1;
        }
    }
    (total, n)
}

/// A TCP proxy to `upstream` that can be cut (new connections are closed at once, open ones
/// are aborted) and restored. Dropping it stops it.
pub struct CutProxy {
    pub port: u16,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: String, up: bool) -> CutProxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = watch::channel(up);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                if !*rx.borrow() {
                    drop(s);
                    continue;
                }
                let mut rx = rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut u) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut s, &mut u) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        CutProxy { port, up: tx, task }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of an `http://host:port` URL.
pub fn host_port(url: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    format!("{}:{}", u.host_str().unwrap(), u.port().unwrap())
}

/// `json()` re-exported for the tests' own queries.
pub async fn get_json(url: String) -> Value {
    json(http().get(url)).await
}
