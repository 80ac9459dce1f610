//! The monitoring endpoint of a real `logship run` process: `/metrics` scraped over HTTP
//! (reqwest, and `curl` once) after real Forward traffic, with exact counter values; the whole
//! exposition parsed by an independent parser (the `prometheus-parse` crate) and linted by
//! Prometheus's own `promtool check metrics`; `/api/plugins.json`; `/healthz` going to 503
//! when an output cannot reach Elasticsearch; and an Elasticsearch output against the real
//! OpenSearch node (`TEST_ELASTICSEARCH_URL`) behind a proxy that drops the first
//! connections, so that retries are counted exactly.
//!
//! Addresses come from the `{"message":"listening","source":...,"plugin_id":...}` log lines.
//! Counters are polled until they reach the expected value (the ack of a chunk is sent once
//! the pipeline holds it, and a few counters are updated just after), then compared exactly.

mod es_common;
mod logship_child;
mod monitored_logship;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship::event::{Event, EventBatch, EventTime};
use logship::forward::{ClientConfig, ForwardClient};
use monitored_logship::{get, scrape, value, wait_value, Logship};
use serde_json::Value;

fn plugin(id: &str, ty: &'static str) -> Vec<(&'static str, String)> {
    vec![("plugin_id", id.to_string()), ("type", ty.to_string())]
}

fn events(n: usize, run: &str) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(
                EventTime::now(),
                es_common::mp_map(&[("run", run), ("n", &i.to_string())]),
            )
        })
        .collect()
}

async fn client(addr: &str, shared_key: Option<&str>) -> Result<ForwardClient, String> {
    ForwardClient::connect(ClientConfig {
        addr: addr.to_string(),
        shared_key: shared_key.map(str::to_string),
        self_hostname: "metrics-test".into(),
        require_ack: true,
        timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

const PIPELINE_CONF: &str = r#"
<source>
  @type forward
  @id plain
  bind 127.0.0.1
  port 0
</source>
<source>
  @type forward
  bind 127.0.0.1
  port 0
  <security>
    self_hostname logship-test
    shared_key s3cret
  </security>
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 0
</source>
<source>
  @type monitor_agent
  @id agent
  bind 127.0.0.1
  port 0
</source>
<filter app.**>
  @type record_transformer
  <record>
    host_added yes
  </record>
</filter>
<match app.**>
  @type copy
  <store>
    @type null
    @id sink
  </store>
  <store>
    @type stdout
  </store>
</match>
"#;

/// Forward traffic on two inputs (one with a handshake), a malformed frame, a wrong shared
/// key and an unmatched tag; every counter is checked exactly, over reqwest and curl, and
/// the exposition is parsed and linted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_traffic_is_counted_exactly() {
    let ls = Logship::start(PIPELINE_CONF);
    let metrics = ls.url("in_prometheus.0", "/metrics");
    // Before any traffic: healthy, every counter at zero.
    let (status, _, body) = get(&ls.url("in_prometheus.0", "/healthz")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let plain = plugin("plain", "forward");
    let secure = plugin("in_forward.1", "forward");
    wait_value(&metrics, "logship_input_events_total", &plain, 0.0).await;

    // 3 acked chunks of 10 events on one connection, then 5 events of an unmatched tag.
    let mut c = client(ls.addr("plain"), None).await.unwrap();
    for _ in 0..3 {
        c.send_batch(&EventBatch::new("app.web", events(10, "a")))
            .await
            .unwrap();
    }
    c.send_batch(&EventBatch::new("other.x", events(5, "a")))
        .await
        .unwrap();
    c.close().await.unwrap();

    // A malformed frame (0xc1 is never valid msgpack) closes only its connection.
    let mut raw = std::net::TcpStream::connect(ls.addr("plain")).unwrap();
    raw.write_all(&[0xc1, 0x00, 0x00]).unwrap();
    raw.flush().unwrap();
    wait_value(
        &metrics,
        "logship_input_malformed_frames_total",
        &plain,
        1.0,
    )
    .await;
    drop(raw);

    // Wrong shared key: refused, counted; the right key works.
    let e = client(ls.addr("in_forward.1"), Some("wrong"))
        .await
        .expect_err("a wrong shared key is refused");
    assert!(
        e.to_lowercase().contains("handshake") || e.contains("key"),
        "{e}"
    );
    wait_value(
        &metrics,
        "logship_input_handshake_failures_total",
        &secure,
        1.0,
    )
    .await;
    let mut c = client(ls.addr("in_forward.1"), Some("s3cret"))
        .await
        .unwrap();
    c.send_batch(&EventBatch::new("app.api", events(7, "b")))
        .await
        .unwrap();
    c.close().await.unwrap();

    let sink = plugin("sink", "null");
    let stdout = plugin("out_stdout.0", "stdout");
    let copy = plugin("out_copy.0", "copy");
    let filter = plugin("filter_record_transformer.0", "record_transformer");
    wait_value(&metrics, "logship_input_events_total", &plain, 35.0).await;
    wait_value(&metrics, "logship_input_events_total", &secure, 7.0).await;
    wait_value(&metrics, "logship_input_acks_sent_total", &plain, 4.0).await;
    wait_value(&metrics, "logship_input_acks_sent_total", &secure, 1.0).await;
    // 4 event frames; the secure input also decoded the PING of both connections.
    wait_value(&metrics, "logship_input_frames_total", &plain, 4.0).await;
    wait_value(&metrics, "logship_input_frames_total", &secure, 3.0).await;
    wait_value(&metrics, "logship_input_connections_total", &plain, 2.0).await;
    wait_value(&metrics, "logship_input_connections_total", &secure, 2.0).await;
    wait_value(&metrics, "logship_input_connections", &plain, 0.0).await;
    wait_value(
        &metrics,
        "logship_input_handshake_failures_total",
        &plain,
        0.0,
    )
    .await;
    wait_value(&metrics, "logship_filter_events_in_total", &filter, 37.0).await;
    wait_value(&metrics, "logship_filter_events_out_total", &filter, 37.0).await;
    for out in [&sink, &stdout, &copy] {
        wait_value(&metrics, "logship_output_events_total", out, 37.0).await;
        wait_value(&metrics, "logship_output_batches_total", out, 4.0).await;
        wait_value(&metrics, "logship_output_refused_events_total", out, 0.0).await;
    }
    wait_value(&metrics, "logship_router_unmatched_events_total", &[], 5.0).await;

    // The client's exact encoding is its own business: the byte count is at least the records'
    // bytes (35 events of more than 10 bytes) plus the 3 bytes of the malformed connection.
    let (body, s) = scrape(&metrics).await;
    let bytes = value(&s, "logship_input_bytes_total", &[("plugin_id", "plain")]).unwrap();
    assert!(bytes > 35.0 * 10.0, "{bytes}");
    // Process metrics from /proc.
    let rss = value(&s, "process_resident_memory_bytes", &[]).unwrap();
    assert!(rss > 1_000_000.0 && rss < 1e9, "{rss}");
    let start = value(&s, "process_start_time_seconds", &[]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now + 1.0 && start > now - 600.0,
        "{start} vs {now}"
    );
    assert!(value(&s, "process_cpu_seconds_total", &[]).is_some());
    // Every sample has a # TYPE of its own name.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "no # TYPE for {name}"
        );
    }
    promtool_check(&body);

    // curl sees the same, and so does the monitor_agent source.
    let out = Command::new("curl")
        .args(["-sS", "-f", "--noproxy", "*", &metrics])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l == r#"logship_input_events_total{plugin_id="plain",type="forward"} 35"#),
        "{text}"
    );
    let (status, _, agent_text) = get(&ls.url("agent", "/metrics")).await;
    assert_eq!(status, 200);
    assert!(agent_text.contains(r#"logship_output_events_total{plugin_id="sink",type="null"} 37"#));

    // Fluentd's plugins.json on the monitor_agent source (not on the prometheus one).
    let (status, ct, body) = get(&ls.url("agent", "/api/plugins.json")).await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let list = v["plugins"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|p| p["plugin_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "plain",
            "in_forward.1",
            "in_prometheus.0",
            "agent",
            "filter_record_transformer.0",
            "out_copy.0",
            "sink",
            "out_stdout.0"
        ]
    );
    let by_id = |id: &str| list.iter().find(|p| p["plugin_id"] == id).unwrap().clone();
    assert_eq!(by_id("plain")["emit_records"], 35);
    assert_eq!(by_id("plain")["plugin_category"], "input");
    assert_eq!(by_id("sink")["emit_records"], 37);
    assert_eq!(by_id("sink")["emit_count"], 4);
    assert_eq!(by_id("sink")["output_plugin"], true);
    assert_eq!(by_id("sink")["type"], "null");
    let (status, _, _) = get(&ls.url("in_prometheus.0", "/api/plugins.json")).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&ls.url("agent", "/nope")).await;
    assert_eq!(status, 404);

    // Still serving, still healthy.
    let (status, _, body) = get(&ls.url("agent", "/healthz")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert!(!ls.stderr().contains("panicked"), "{}", ls.stderr());
}

/// `promtool check metrics` (Prometheus's own parser and linter) accepts the exposition.
/// promtool comes from Debian's `prometheus` package (scripts/test-services.sh installs it);
/// without it the check is skipped, unless REQUIRE_SERVICES=1.
fn promtool_check(body: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if std::env::var("REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("promtool is not installed ({e}) but REQUIRE_SERVICES=1 (scripts/test-services.sh install)")
        }
        Err(e) => {
            eprintln!("skipping promtool: {e}");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\nexposition:\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An Elasticsearch output that cannot connect: retries are counted and, after
/// `health_failing_after`, `/healthz` answers 503 naming the output; nothing is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_elasticsearch_is_unreachable() {
    // A port nothing listens on (bound, then closed).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let conf = format!(
        r#"
<source>
  @type forward
  bind 127.0.0.1
  port 0
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 0
  health_failing_after 2s
</source>
<match **>
  @type elasticsearch
  @id es_down
  host 127.0.0.1
  port {dead_port}
  request_timeout 2s
  <buffer>
    flush_mode immediate
    retry_wait 0.2s
    retry_max_interval 0.5s
    retry_forever true
  </buffer>
</match>
"#
    );
    let ls = Logship::start(&conf);
    let health = ls.url("in_prometheus.0", "/healthz");
    let metrics = ls.url("in_prometheus.0", "/metrics");
    let (status, _, body) = get(&health).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    let mut c = client(ls.addr("in_forward.0"), None).await.unwrap();
    c.send_batch(&EventBatch::new("app", events(20, "h")))
        .await
        .unwrap();
    c.close().await.unwrap();
    let es = plugin("es_down", "elasticsearch");
    wait_value(&metrics, "logship_output_events_total", &es, 20.0).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, _, body) = get(&health).await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200);
        assert!(Instant::now() < deadline, "/healthz never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "failing", "{body}");
    let reasons = v["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{body}");
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .starts_with("output es_down: every request has failed for "),
        "{body}"
    );
    let (_, s) = scrape(&metrics).await;
    let l = [("plugin_id", "es_down")];
    let failed = value(&s, "logship_output_failed_requests_total", &l).unwrap();
    let requests = value(&s, "logship_output_requests_total", &l).unwrap();
    let retries = value(&s, "logship_output_retries_total", &l).unwrap();
    // A request may be in flight while we read (counted as sent, not yet as failed).
    assert!(
        failed >= 2.0 && (requests == failed || requests == failed + 1.0),
        "{failed} {requests}"
    );
    // Every failed request retries all 20 events (the last one may not have retried yet).
    assert!(
        retries >= 20.0 * (failed - 1.0) && retries <= 20.0 * failed,
        "{retries} {failed}"
    );
    assert_eq!(
        value(&s, "logship_output_delivered_events_total", &l),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "logship_output_dead_lettered_total", &l),
        Some(0.0)
    );
    assert!(value(&s, "logship_buffer_total_bytes", &l).unwrap() > 0.0);
}

/// A loopback proxy to `upstream` that drops (accepts, then closes) its first `drop_first`
/// connections and relays the rest byte for byte.
async fn dropping_proxy(upstream: String, drop_first: usize) -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = l.accept().await {
            if s2.fetch_add(1, Ordering::SeqCst) < drop_first {
                drop(down);
                continue;
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    (port, seen)
}

/// Against the real OpenSearch node: one chunk of 50 events, the first two bulk requests lost
/// on the way → exactly 3 requests, 2 failed, 100 event retries, 50 delivered, 50 documents.
/// (The connection before them is the output's start-up check, `GET /`: dropped too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_output_counts_requests_retries_and_deliveries() {
    let Some(es) = es_common::es_url() else {
        return;
    };
    let _g = es_common::Engine::OpenSearch.lock().lock().await;
    let u = reqwest::Url::parse(&es).unwrap();
    let upstream = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap());
    let (proxy_port, seen) = dropping_proxy(upstream, 3).await;
    let run = es_common::run_id();
    let index = format!("logship-metrics-{run}");
    let conf = format!(
        r#"
<source>
  @type forward
  bind 127.0.0.1
  port 0
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 0
</source>
<match **>
  @type elasticsearch
  host 127.0.0.1
  port {proxy_port}
  index_name {index}
  suppress_type_name true
  request_timeout 10s
  # only _bulk requests on the wire, so the dropped connections are exactly the first two
  # bulk requests (no GET / for version detection before them)
  verify_es_version_at_startup false
  <buffer>
    flush_mode immediate
    flush_thread_count 1
    retry_wait 0.1s
    retry_max_interval 0.2s
    retry_forever true
  </buffer>
</match>
"#
    );
    let ls = Logship::start(&conf);
    let metrics = ls.url("in_prometheus.0", "/metrics");
    let mut c = client(ls.addr("in_forward.0"), None).await.unwrap();
    c.send_batch(&EventBatch::new("app", events(50, &run)))
        .await
        .unwrap();
    c.close().await.unwrap();
    let out = plugin("out_elasticsearch.0", "elasticsearch");
    wait_value(
        &metrics,
        "logship_output_delivered_events_total",
        &out,
        50.0,
    )
    .await;
    wait_value(&metrics, "logship_output_events_total", &out, 50.0).await;
    wait_value(&metrics, "logship_output_requests_total", &out, 3.0).await;
    wait_value(&metrics, "logship_output_failed_requests_total", &out, 2.0).await;
    wait_value(&metrics, "logship_output_retries_total", &out, 100.0).await;
    wait_value(&metrics, "logship_output_dead_lettered_total", &out, 0.0).await;
    wait_value(&metrics, "logship_buffer_total_bytes", &out, 0.0).await;
    wait_value(&metrics, "logship_buffer_queue_length", &out, 0.0).await;
    assert!(seen.load(Ordering::SeqCst) >= 4);
    let (_, s) = scrape(&metrics).await;
    assert!(
        value(
            &s,
            "logship_buffer_limit_bytes",
            &[("plugin_id", "out_elasticsearch.0")]
        )
        .unwrap()
            > 0.0
    );

    // The node has the 50 documents.
    let h = es_common::http();
    h.post(format!("{es}/{index}/_refresh"))
        .send()
        .await
        .unwrap();
    let n: Value = h
        .get(format!("{es}/{index}/_count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(n["count"], 50, "{n}");
    let _ = h.delete(format!("{es}/{index}")).send().await;
}

/// A buffer over 90 % of `total_limit_size` makes `/healthz` fail; a batch that does not fit
/// (`throw_exception`) is refused, not acked, and counted on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_buffer_fails_healthz_and_overflow_is_counted() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    // Nothing is flushed for an hour: the buffer only fills.
    let conf = format!(
        r#"
<source>
  @type forward
  bind 127.0.0.1
  port 0
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 0
</source>
<match **>
  @type elasticsearch
  @id es_full
  host 127.0.0.1
  port {dead_port}
  <buffer>
    flush_interval 1h
    total_limit_size 2000
    overflow_action throw_exception
  </buffer>
</match>
"#
    );
    let ls = Logship::start(&conf);
    let health = ls.url("in_prometheus.0", "/healthz");
    let metrics = ls.url("in_prometheus.0", "/metrics");
    let es = plugin("es_full", "elasticsearch");
    let input = plugin("in_forward.0", "forward");

    // 10 events: well under 90 %.
    let mut c = client(ls.addr("in_forward.0"), None).await.unwrap();
    c.send_batch(&EventBatch::new("app", events(10, "f")))
        .await
        .unwrap();
    wait_value(&metrics, "logship_output_events_total", &es, 10.0).await;
    let (status, _, body) = get(&health).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    // Fill past 90 % with batches of 5, checking the rule against the exposed gauge.
    let mut sent = 10.0;
    let held = loop {
        c.send_batch(&EventBatch::new("app", events(5, "f")))
            .await
            .unwrap();
        sent += 5.0;
        wait_value(&metrics, "logship_output_events_total", &es, sent).await;
        let (_, s) = scrape(&metrics).await;
        let held = value(
            &s,
            "logship_buffer_total_bytes",
            &[("plugin_id", "es_full")],
        )
        .unwrap();
        assert_eq!(
            value(
                &s,
                "logship_buffer_limit_bytes",
                &[("plugin_id", "es_full")]
            ),
            Some(2000.0)
        );
        let (status, _, body) = get(&health).await;
        if held > 1800.0 {
            assert_eq!(status, 503, "{held}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                v["reasons"][0],
                format!("output es_full: buffer holds {held} of 2000 bytes (over 90%)"),
                "{body}"
            );
            break held;
        }
        assert_eq!(status, 200, "{held}: {body}");
        assert!(sent < 200.0, "the buffer never filled: {held}");
    };
    // The next batch does not fit: refused, the connection closed without an ack.
    let r = c.send_batch(&EventBatch::new("app", events(20, "f"))).await;
    assert!(r.is_err(), "an overflowing batch must not be acked");
    wait_value(&metrics, "logship_output_refused_events_total", &es, 20.0).await;
    wait_value(&metrics, "logship_input_refused_batches_total", &input, 1.0).await;
    wait_value(&metrics, "logship_input_events_total", &input, sent).await;
    wait_value(&metrics, "logship_output_events_total", &es, sent).await;
    wait_value(&metrics, "logship_buffer_total_bytes", &es, held).await;
    wait_value(&metrics, "logship_output_requests_total", &es, 0.0).await;
}

const FLOOD_CONF: &str = r#"
<source>
  @type forward
  @id in
  bind 127.0.0.1
  port 0
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 0
</source>
<filter app.**>
  @type parser
  @id parse_log
  key_name log
  reserve_data true
  <parse>
    @type json
  </parse>
</filter>
<match app.**>
  @type null
  @id sink
</match>
"#;

/// Issue 16: a producer of 50,000 lines that are not JSON must not flood logship's own log.
/// The parser filter counts every one (metric), passes every one on unchanged (the null output
/// counts them), and logs the first few with an example, then one line per interval with the
/// number suppressed — so logship's stderr stays a few lines long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_bad_lines_are_counted_not_logged_one_by_one() {
    const BAD: usize = 50_000;
    let ls = Logship::start(FLOOD_CONF);
    let metrics = ls.url("in_prometheus.0", "/metrics");
    let lines_at_start = ls.lines.lock().unwrap().len();
    let started = Instant::now();
    let mut c = client(ls.addr("in"), None).await.unwrap();
    let bad_line = "thread 'main' panicked at src/main.rs:7:5: not JSON at all";
    for chunk in 0..BAD / 1000 {
        let events = (0..1000)
            .map(|i| {
                let log = format!("{bad_line} #{}", chunk * 1000 + i);
                Event::new(EventTime::now(), es_common::mp_map(&[("log", &log)]))
            })
            .collect();
        c.send_batch(&EventBatch::new("app.web", events))
            .await
            .unwrap();
    }
    let parser = plugin("parse_log", "parser");
    wait_value(
        &metrics,
        "logship_filter_invalid_records_total",
        &parser,
        BAD as f64,
    )
    .await;
    wait_value(
        &metrics,
        "logship_output_events_total",
        &plugin("sink", "null"),
        BAD as f64,
    )
    .await;
    let elapsed = started.elapsed();
    // Whatever logship logs at shutdown is not part of the flood: count before stopping.
    let lines: Vec<String> = ls.lines.lock().unwrap()[lines_at_start..].to_vec();
    let warns: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "parser filter: record left unparsed")
        .collect();
    // 5 per 10-second interval (logship::filter::parser::WARN_BURST / WARN_INTERVAL).
    let intervals = elapsed.as_secs() / 10 + 1;
    assert!(
        !warns.is_empty() && warns.len() as u64 <= 5 * intervals,
        "{} WARN lines for {BAD} bad records in {elapsed:?}:\n{}",
        warns.len(),
        lines.join("\n")
    );
    assert!(
        lines.len() as u64 <= 5 * intervals + 2,
        "{} stderr lines after start-up:\n{}",
        lines.len(),
        ls.stderr()
    );
    // The first ones carry the reason and an example of the value.
    assert_eq!(
        warns[0]["fields"]["reason"]
            .as_str()
            .unwrap()
            .split(" (")
            .next(),
        Some("value is not valid JSON")
    );
    assert!(
        warns[0]["fields"]["example"]
            .as_str()
            .unwrap()
            .starts_with(bad_line),
        "{}",
        warns[0]
    );
    // A line after the interval says how many were not logged.
    let summed: u64 = warns
        .iter()
        .filter_map(|w| w["fields"]["suppressed"].as_u64())
        .sum();
    assert!(summed < BAD as u64);
}

/// Peak RSS (VmHWM) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// docs/durability.md, *Memory*: with a memory buffer, logship's memory follows
/// `total_limit_size` (plus a base, and one bulk body and one chunk per flush worker) however
/// much is sent. Elasticsearch is unreachable (a closed port on loopback), so nothing drains:
/// the buffer fills to its limit, the input blocks (overflow_action block), and the peak RSS
/// must stay within the documented bound — while 4× the limit is offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_buffer_rss_follows_total_limit_size() {
    const LIMIT_MIB: u64 = 16;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let conf = format!(
        r#"
<source>
  @type forward
  @id in
  bind 127.0.0.1
  port 0
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 0
</source>
<match app.**>
  @type elasticsearch
  @id es
  host 127.0.0.1
  port {closed_port}
  request_timeout 2s
  <buffer>
    @type memory
    total_limit_size {LIMIT_MIB}m
    chunk_limit_size 1m
    flush_interval 1s
    flush_thread_count 2
    overflow_action block
    retry_forever true
    retry_wait 1s
  </buffer>
</match>
"#
    );
    let ls = Logship::start(&conf);
    let metrics = ls.url("in_prometheus.0", "/metrics");
    let addr = ls.addr("in").to_string();
    // 4 × the limit in 1,000-event batches of ~330-byte records; blocks once the buffer is full.
    let sender = tokio::spawn(async move {
        let mut c = client(&addr, None).await.unwrap();
        let line = "x".repeat(250);
        for b in 0..200 {
            let events = (0..1000)
                .map(|i| {
                    let n = format!("{b}-{i}");
                    Event::new(
                        EventTime::now(),
                        es_common::mp_map(&[("log", &line), ("n", &n)]),
                    )
                })
                .collect();
            if c.send_batch(&EventBatch::new("app.web", events))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // Wait until the buffer holds at least 90 % of its limit (bounded).
    let es = plugin("es", "elasticsearch");
    let l: Vec<(&str, &str)> = es.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let limit = (LIMIT_MIB << 20) as f64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let (body, s) = scrape(&metrics).await;
        let held = value(&s, "logship_buffer_total_bytes", &l).unwrap_or(0.0);
        if held >= 0.9 * limit {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "the buffer did not fill:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        held <= limit,
        "the buffer holds {held} bytes, over its limit"
    );
    // A few more retry rounds while it is full (each re-encodes bodies).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peak = peak_rss(ls.child.id());
    // The documented bound: base (16 MiB) + total_limit_size + flush_thread_count ×
    // (chunk_limit_size + bulk_message_request_threshold (4 MiB)), plus 25 % for the allocator.
    let bound = ((16 + LIMIT_MIB + 2 * (1 + 4)) << 20) as f64 * 1.25;
    assert!(
        (peak as f64) <= bound,
        "peak RSS {} MiB over the bound {} MiB",
        peak >> 20,
        bound as u64 >> 20
    );
    eprintln!(
        "peak RSS {} MiB with the buffer holding {} MiB",
        peak >> 20,
        held as u64 >> 20
    );
    // And the limit does matter: far less than what was offered (~66 MB of records) is held.
    assert!((peak as f64) < 66e6, "peak RSS {} MiB", peak >> 20);
    sender.abort();
}
