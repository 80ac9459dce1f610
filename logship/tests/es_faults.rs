//! Fault injection between logship and each real search engine (OpenSearch, Elasticsearch 7 and 8):
//! a small HTTP proxy that forwards every request, then rewrites some `_bulk` responses —
//! single items turned into 429 (after the node really indexed them), or the whole response
//! turned into a 503.
//! logship must retry exactly those items; the retry of an item that was in fact stored
//! answers 409 on `create`, which counts as delivered: every event once, none dead-lettered.

mod durability_common;
mod es_common;
mod logship_child;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use es_common::*;
use logship::event::EventTime;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

on_every_engine!(
    items_answered_429_and_whole_503s_are_retried_and_stored_once,
    reconnect_on_error_opens_new_connections_after_a_failed_request,
);

#[derive(Default)]
struct Faults {
    /// Bulk responses still to rewrite with their first 5 items as 429.
    items_429: AtomicU32,
    /// Bulk requests still to answer 503 as a whole (after forwarding them).
    whole_503: AtomicU32,
    /// TCP connections accepted so far.
    connections: AtomicU32,
    /// Every request seen: (connection number, method and path, status answered).
    seen: std::sync::Mutex<Vec<(u32, String, u16)>>,
}

async fn proxy(upstream: String, faults: Arc<Faults>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let conn = faults.connections.fetch_add(1, Ordering::SeqCst) + 1;
            let upstream = upstream.clone();
            let faults = faults.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let http = http();
                loop {
                    let mut head = String::new();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let mut lines = head.lines();
                    let first: Vec<&str> = lines.next().unwrap().split(' ').collect();
                    let (method, path) = (first[0].to_string(), first[1].to_string());
                    let mut len = 0usize;
                    let mut ct = None;
                    for h in lines {
                        let (k, v) = h.split_once(':').unwrap();
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap(),
                            "content-type" => ct = Some(v.trim().to_string()),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.unwrap();
                    let mut req =
                        http.request(method.parse().unwrap(), format!("{upstream}{path}"));
                    if let Some(ct) = ct {
                        req = req.header("content-type", ct);
                    }
                    let resp = req.body(body).send().await.unwrap();
                    let mut status = resp.status().as_u16();
                    let mut out = resp.bytes().await.unwrap().to_vec();
                    if path.starts_with("/_bulk") {
                        let take = |a: &AtomicU32| {
                            a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                                .is_ok()
                        };
                        if take(&faults.whole_503) {
                            status = 503;
                            out = br#"{"error":"injected 503"}"#.to_vec();
                        } else if take(&faults.items_429) {
                            let mut v: Value = serde_json::from_slice(&out).unwrap();
                            v["errors"] = json!(true);
                            for item in v["items"].as_array_mut().unwrap().iter_mut().take(5) {
                                let op = item.as_object_mut().unwrap().values_mut().next().unwrap();
                                op["status"] = json!(429);
                                op["error"] = json!({"type":"es_rejected_execution_exception","reason":"injected"});
                            }
                            out = serde_json::to_vec(&v).unwrap();
                        }
                    }
                    faults
                        .seen
                        .lock()
                        .unwrap()
                        .push((conn, format!("{method} {path}"), status));
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        out.len()
                    );
                    if w.write_all(head.as_bytes()).await.is_err()
                        || w.write_all(&out).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Forward in → the bunyan parser on `log` → elasticsearch with `params`, flushing every 0.2 s
/// and retrying after 0.1 s, plus `buffer` lines.
fn conf(params: &str, buffer: &str) -> String {
    format!(
        r#"<source>
  @type forward
  port 0
  bind 127.0.0.1
</source>
<filter docker.**>
  @type parser
  key_name log
  reserve_data true
  <parse>
    @type json
  </parse>
</filter>
<match docker.**>
  @type elasticsearch
  {params}
  <buffer>
    flush_interval 0.2
    retry_wait 0.1
    {buffer}
  </buffer>
</match>
"#
    )
}

async fn items_answered_429_and_whole_503s_are_retried_and_stored_once(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let faults = Arc::new(Faults {
        items_429: AtomicU32::new(3),
        whole_503: AtomicU32::new(2),
        ..Default::default()
    });
    let port = proxy(es.clone(), faults.clone()).await;
    let run = run_id();
    let conf = conf(
        &format!("hosts 127.0.0.1:1,127.0.0.1:{port}\n  index_name fluentd-faults-{run}"),
        "chunk_limit_records 20\n    retry_max_interval 0.5",
    );
    let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());
    let mut client = ls.client().await;
    let n = 100;
    for i in 0..n {
        let t = EventTime::now();
        let line = bunyan_line(&run, i, t, json!(200));
        client
            .send_message("docker.api", t, &docker_record(&line, false))
            .await
            .unwrap();
    }
    wait_count(&es, &run, n as u64, 60).await;
    assert_eq!(faults.items_429.load(Ordering::SeqCst), 0);
    assert_eq!(faults.whole_503.load(Ordering::SeqCst), 0);
    drop(client);
    let stats = ls.stop();
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    // 5 items of 3 responses were stored yet reported 429: their retry answers 409.
    assert_eq!(
        stats["duplicates"].as_u64().unwrap() + stats["indexed"].as_u64().unwrap(),
        n as u64,
        "{stats}"
    );
    assert!(stats["duplicates"].as_u64().unwrap() >= 15, "{stats}");
    assert!(stats["retried"].as_u64().unwrap() >= 15, "{stats}");
    assert!(stats["failed_requests"].as_u64().unwrap() >= 2, "{stats}");
    let _ = http()
        .delete(format!("{es}/fluentd-faults-{run}"))
        .send()
        .await;
}

/// `reconnect_on_error`: after a request that failed as a whole (a 503 here), the output drops
/// its pooled connections and detects the engine again — the proxy sees a new TCP connection
/// and a second `GET /`. Without it, the retry goes over the same keep-alive connection.
async fn reconnect_on_error_opens_new_connections_after_a_failed_request(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    for reconnect in [false, true] {
        let faults = Arc::new(Faults {
            whole_503: AtomicU32::new(1),
            ..Default::default()
        });
        let port = proxy(es.clone(), faults.clone()).await;
        let run = run_id();
        let conf = conf(
            &format!(
                "hosts 127.0.0.1:{port}\n  index_name fluentd-reconnect-{run}\n  reconnect_on_error {reconnect}"
            ),
            "retry_max_interval 0.2",
        );
        let ls = Logship::start_conf(&es, &conf, tempfile::tempdir().unwrap());
        let mut client = ls.client().await;
        let t = EventTime::now();
        let batch = logship::event::EventBatch::new(
            "docker.api",
            (0..10)
                .map(|i| {
                    logship::event::Event::new(
                        t,
                        docker_record(&bunyan_line(&run, i, t, json!(200)), false),
                    )
                })
                .collect(),
        );
        client.send_batch(&batch).await.unwrap();
        wait_count(&es, &run, 10, 60).await;
        assert_eq!(faults.whole_503.load(Ordering::SeqCst), 0);
        let connected = durability_common::log_fields(&ls, "elasticsearch output connected");
        let seen = faults.seen.lock().unwrap().clone();
        drop(client);
        ls.stop();
        let _ = http()
            .delete(format!("{es}/fluentd-reconnect-{run}"))
            .send()
            .await;
        let roots = seen.iter().filter(|(_, r, _)| r == "GET /").count();
        let failed_on = seen
            .iter()
            .find(|(_, r, st)| r.starts_with("POST /_bulk") && *st == 503)
            .map(|(c, _, _)| *c)
            .expect("the 503");
        let next = seen
            .iter()
            .skip_while(|(_, _, st)| *st != 503)
            .nth(1)
            .cloned()
            .expect("a request after the 503");
        if reconnect {
            // version detection again, over a connection opened after the failure
            assert_eq!(roots, 2, "{seen:?}");
            assert_eq!(next.1, "GET /", "{seen:?}");
            assert!(
                next.0 > failed_on,
                "a new connection after the 503: {seen:?}"
            );
            assert_eq!(connected.len(), 2, "{connected:?}");
        } else {
            // the bulk request is simply retried: no second detection, no reconnection
            assert_eq!(roots, 1, "{seen:?}");
            assert!(next.1.starts_with("POST /_bulk"), "{seen:?}");
            assert_eq!(connected.len(), 1, "{connected:?}");
        }
    }
}
