//! Fault test 5 (issue 5), two tiers: a client → edge `logship run` (fluentd/edge.conf,
//! forward output, acks) → two aggregator `logship run`s (fluentd/aggregator.conf) → each real
//! search engine (OpenSearch, Elasticsearch 7 and 8; one test per engine). One aggregator
//! fails during the run; at the end `_count` is exactly the number of events sent and no
//! `request_id` is stored twice.
//!
//! What each test proves:
//! - `killed_aggregator`: the aggregators use `<buffer @type file>`; one is SIGKILLed in the
//!   middle of the stream (once 5,000 documents are stored), with chunks it had acked still
//!   on its disk. The edge notices (a failed send or the heartbeats) and sends everything else
//!   to the survivor; the killed aggregator is restarted on the same buffer path, resumes its
//!   chunks and delivers them, and the edge takes it back. Acked events survive the kill.
//!   (With a memory buffer the kill would have to wait until the node holds everything sent
//!   so far: acked, undelivered events die with it.)
//! - `frozen_aggregator`: an aggregator is stopped (SIGSTOP) in the middle of the stream with
//!   chunks in flight: the edge's ack timeout fires, the unacked chunks go to the other
//!   aggregator; when the stopped one resumes it delivers what it had acked and whatever it
//!   still reads — the copies are answered 409 by the node (deterministic ids): exactly once.

mod es_common;
mod fwd_common;
mod logship_child;

use std::time::Duration;

use es_common::*;
use fwd_common::{free_port, wait_for, Proc};
use logship::event::{Event, EventBatch, EventTime};
use logship::forward::{ClientConfig, ForwardClient};
use serde_json::{json, Value};

on_every_engine!(killed_aggregator, frozen_aggregator,);

struct Tier {
    edge: Proc,
    edge_port: u16,
    aggs: Vec<Option<Proc>>,
    agg_ports: Vec<u16>,
    agg_confs: Vec<std::path::PathBuf>,
    agg_buffers: Vec<std::path::PathBuf>,
    es_env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

fn edit(mut text: String, edits: &[(&str, &str)]) -> String {
    for (from, to) in edits {
        assert!(text.contains(from), "no '{from}' in the config");
        text = text.replace(from, to);
    }
    text
}

impl Tier {
    fn start(es: &str, edge_edits: &[(&str, &str)]) -> Tier {
        let dir = tempfile::tempdir().unwrap();
        let u = reqwest::Url::parse(es).unwrap();
        let es_env = vec![
            ("ELASTICSEARCH_HOST", u.host_str().unwrap().to_string()),
            ("ELASTICSEARCH_PORT", u.port().unwrap().to_string()),
            (
                "FLUENTD_TEMPLATE_FILE",
                repo()
                    .join("elk/fluentd-template.json")
                    .display()
                    .to_string(),
            ),
            ("AGGREGATOR_BIND", "127.0.0.1".to_string()),
        ];
        let agg_text = std::fs::read_to_string(repo().join("fluentd/aggregator.conf")).unwrap();
        let mut aggs = Vec::new();
        let mut agg_ports = Vec::new();
        let mut agg_confs = Vec::new();
        let mut agg_buffers = Vec::new();
        for i in 0..2 {
            let port = free_port();
            let text = edit(
                agg_text.clone(),
                &[("flush_interval 1s", "flush_interval 0.2s")],
            );
            let conf = dir.path().join(format!("aggregator{i}.conf"));
            std::fs::write(&conf, text).unwrap();
            let mut env = es_env.clone();
            env.push(("AGGREGATOR_PORT", port.to_string()));
            env.push((
                "AGGREGATOR_BUFFER_PATH",
                dir.path()
                    .join(format!("agg{i}-buffer"))
                    .display()
                    .to_string(),
            ));
            let (p, got) = Proc::start(&conf, &env);
            assert_eq!(got, port);
            aggs.push(Some(p));
            agg_ports.push(port);
            agg_confs.push(conf);
            agg_buffers.push(dir.path().join(format!("agg{i}-buffer")));
        }
        let edge_text = edit(
            std::fs::read_to_string(repo().join("fluentd/edge.conf")).unwrap(),
            &[
                ("heartbeat_interval 1s", "heartbeat_interval 0.2s"),
                ("recover_wait 10s", "recover_wait 1s"),
                ("flush_interval 1s", "flush_interval 0.2s"),
                ("retry_wait 1s", "retry_wait 0.2s"),
                ("retry_max_interval 30s", "retry_max_interval 2s"),
            ],
        );
        let edge_text = edit(edge_text, edge_edits);
        let conf = dir.path().join("edge.conf");
        std::fs::write(&conf, edge_text).unwrap();
        let (edge, edge_port) = Proc::start(
            &conf,
            &[
                ("EDGE_PORT", "0".to_string()),
                ("EDGE_BIND", "127.0.0.1".to_string()),
                (
                    "EDGE_BUFFER_PATH",
                    dir.path().join("edge-buffer").display().to_string(),
                ),
                ("AGGREGATOR1_HOST", "127.0.0.1".to_string()),
                ("AGGREGATOR1_PORT", agg_ports[0].to_string()),
                ("AGGREGATOR2_HOST", "127.0.0.1".to_string()),
                ("AGGREGATOR2_PORT", agg_ports[1].to_string()),
            ],
        );
        Tier {
            edge,
            edge_port,
            aggs,
            agg_ports,
            agg_confs,
            agg_buffers,
            es_env,
            _dir: dir,
        }
    }

    fn restart_agg(&mut self, i: usize) {
        let mut env = self.es_env.clone();
        env.push(("AGGREGATOR_PORT", self.agg_ports[i].to_string()));
        env.push((
            "AGGREGATOR_BUFFER_PATH",
            self.agg_buffers[i].display().to_string(),
        ));
        let (p, got) = Proc::start(&self.agg_confs[i], &env);
        assert_eq!(got, self.agg_ports[i]);
        self.aggs[i] = Some(p);
    }

    async fn client(&self) -> ForwardClient {
        ForwardClient::connect(ClientConfig {
            addr: format!("127.0.0.1:{}", self.edge_port),
            require_ack: true,
            timeout: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap()
    }

    /// SIGTERM to the edge; the fields of its "forward output stopped" line.
    fn stop_edge(&mut self) -> Value {
        self.edge.stop();
        self.edge
            .log_fields("forward output stopped")
            .unwrap_or_else(|| {
                panic!(
                    "no stats line from the edge:\n{}",
                    self.edge.lines.lock().unwrap().join("\n")
                )
            })
    }
}

/// Sends events `from..to` of `run` to the edge in acked batches of 500.
async fn send(c: &mut ForwardClient, run: &str, from: usize, to: usize) {
    let now = EventTime::now();
    let mut i = from;
    while i < to {
        let n = (to - i).min(500);
        let events = (i..i + n)
            .map(|k| {
                let t = EventTime::new(now.secs, k as u32);
                Event::new(t, docker_record(&bunyan_line(run, k, t, json!(200)), false))
            })
            .collect();
        c.send_batch(&EventBatch::new("docker.api", events))
            .await
            .expect("the edge acks every batch");
        i += n;
    }
}

/// `request_id`s of `run` stored more than once.
async fn duplicated_ids(es: &str, run: &str) -> Value {
    let v = json(http().post(format!("{es}/fluentd-*/_search")).json(&json!({
        "size": 0,
        "query": {"term": {"run": run}},
        "aggs": {"dups": {"terms": {"field": "request_id", "min_doc_count": 2, "size": 10}}}
    })))
    .await;
    v["aggregations"]["dups"]["buckets"].clone()
}

async fn wait_for_count(es: &str, run: &str, n: u64) {
    let es2 = es.to_string();
    let run2 = run.to_string();
    // poll the node (bounded), then check the count holds
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let c = count(&es2, &run2).await;
        assert!(c <= n, "more documents than sent: {c} > {n}");
        if c == n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {c} of {n} documents after 180 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_count(es, run, n, 30).await;
}

async fn killed_aggregator(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let total = 50_000usize;
    let mut t = Tier::start(&es, &[]);
    let mut c = t.client().await;
    // the kill lands in the middle of the stream, while both aggregators are busy
    let run2 = run.clone();
    let stream = tokio::spawn(async move {
        send(&mut c, &run2, 0, total).await;
        c
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while count(&es, &run).await < 5_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream does not flow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.aggs[0].take().unwrap().kill9();
    c = stream.await.unwrap();
    eprintln!(
        "stored before the killed aggregator restarts: {}",
        count(&es, &run).await
    );
    let edge_lines = t.edge.lines.clone();
    let logged = move |what: &str| {
        edge_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(what) && l.contains("aggregator-1"))
    };
    wait_for("the edge marks the killed aggregator down", 30, || {
        logged("forward server marked down")
    })
    .await;
    // the restart step: the aggregator comes back on its port (and buffer path)
    t.restart_agg(0);
    wait_for("heartbeats take the restarted aggregator back", 30, || {
        logged("forward server is up again")
    })
    .await;
    wait_for_count(&es, &run, total as u64).await;
    assert_eq!(duplicated_ids(&es, &run).await, json!([]));
    c.close().await.unwrap();
    let stats = t.stop_edge();
    eprintln!("edge: {stats}");
    assert_eq!(stats["received"], total as u64, "{stats}");
    assert_eq!(stats["delivered"], total as u64, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");
    for a in t.aggs.iter_mut().flatten() {
        a.stop();
    }
}

async fn frozen_aggregator(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let total = 20_000usize;
    let mut t = Tier::start(
        &es,
        &[("ack_response_timeout 30s", "ack_response_timeout 3s")],
    );
    let mut c = t.client().await;
    send(&mut c, &run, 0, total / 4).await;
    let frozen = t.aggs[0].as_ref().unwrap();
    frozen.signal("STOP");
    send(&mut c, &run, total / 4, total).await;
    // the edge finishes everything on the other aggregator while this one is frozen...
    let edge_lines = t.edge.lines.clone();
    wait_for("the edge resent a chunk after an ack timeout", 60, || {
        edge_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("forward send failed") && l.contains("timed out: ack"))
    })
    .await;
    t.aggs[0].as_ref().unwrap().signal("CONT");
    wait_for_count(&es, &run, total as u64).await;
    assert_eq!(duplicated_ids(&es, &run).await, json!([]));
    c.close().await.unwrap();
    let stats = t.stop_edge();
    eprintln!("edge: {stats}");
    assert_eq!(stats["delivered"], total as u64, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");
    let ack_timeouts = stats["ack_timeouts"].as_u64().unwrap();
    assert!(ack_timeouts >= 1, "{stats}");
    for a in t.aggs.iter_mut().flatten() {
        a.stop();
    }
}
