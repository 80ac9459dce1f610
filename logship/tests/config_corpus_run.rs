//! The corpus run for real: configs of the shapes people deploy, started with `logship run`
//! against the test services' search node, with golden vectors replayed into them.
//!
//! - `fluentd/aggregator.conf` (as shipped, configured only by its environment variables)
//!   takes the Fluent Bit 5.1.1 vectors (`flb5_*`: Forward v1.5 metadata entries, acks, gzip);
//! - `tests/configs/efk_guide.conf` (the Fluentd docs' EFK guide shape: copy, stores,
//!   v0.12's `flush_interval`, `type_name`) takes the Docker driver's vectors (`go_docker_*`);
//! - `tests/configs/k8s_daemonset.conf` (`"#{ENV['X'] || ...}"` everywhere) passes
//!   `check-config` with no variable set, and runs with every variable set, taking the Docker
//!   vectors.
//!
//! Each run adds a monitoring source next to the config (`@include` of the file, or its
//! edited copy) so that the test can wait until the output reports every event delivered;
//! then it stops logship and compares exact counts: events delivered, documents in the node
//! (identical events share a deterministic `_id`, so the node holds the distinct ones), lines
//! on stdout, and the metadata a stdout output shows. Needs `TEST_ELASTICSEARCH_URL` (fails
//! under `REQUIRE_SERVICES=1` without it).

mod common;
mod es_common;
mod logship_child;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{all_vectors, expected_events, replay, Flat};
use es_common::{es_url, http, json, repo, BIN};
use logship_child::{listening_port, spawn_captured, wait_for, Captured};
use serde_json::Value;

/// The vectors whose name starts with `prefix`: (name, bytes, json).
fn vectors(prefix: &str) -> Vec<(String, Vec<u8>, Value)> {
    all_vectors()
        .into_iter()
        .filter(|(n, _, _)| n.starts_with(prefix))
        .collect()
}

/// The events of `vs`, and the distinct ones (one document each: the document id is the
/// tag, time and record, not the v1.5 metadata).
fn events_and_documents(vs: &[(String, Vec<u8>, Value)]) -> (Vec<Flat>, Vec<Flat>) {
    let all: Vec<Flat> = vs.iter().flat_map(|(_, _, j)| expected_events(j)).collect();
    let mut distinct: Vec<Flat> = Vec::new();
    for e in &all {
        if !distinct
            .iter()
            .any(|d| (&d.0, d.1, d.2, &d.3) == (&e.0, e.1, e.2, &e.3))
        {
            distinct.push(e.clone());
        }
    }
    (all, distinct)
}

/// How many of `docs` have the tag `tag`.
fn with_tag(docs: &[Flat], tag: &str) -> u64 {
    docs.iter().filter(|d| d.0 == tag).count() as u64
}

/// `conf` plus a Prometheus source on a free loopback port, as a file in `dir`.
fn with_monitor(dir: &Path, conf: &Path) -> PathBuf {
    let path = dir.join("run.conf");
    let text = format!(
        "@include {}\n\n<source>\n  @type prometheus\n  bind 127.0.0.1\n  port 0\n</source>\n",
        conf.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `logship run`: its forward port and its `/metrics` URL.
struct Run {
    child: Captured,
    port: u16,
    metrics: String,
}

impl Run {
    fn start(cmd: &mut Command) -> Run {
        let child = spawn_captured(cmd);
        let mut port = None;
        let mut metrics = None;
        while port.is_none() || metrics.is_none() {
            let (source, p) = wait_for(&child.log_rx, &child.log, 30, "no 'listening' line", |f| {
                (f["message"] == "listening")
                    .then(|| (f["source"].as_str().unwrap().to_string(), listening_port(f)))
            });
            match source.as_str() {
                "forward" => port = Some(p),
                _ => metrics = Some(format!("http://127.0.0.1:{p}/metrics")),
            }
        }
        Run {
            child,
            port: port.unwrap(),
            metrics: metrics.unwrap(),
        }
    }

    /// Replays each vector on its own connection; the server's replies (acks) must be the
    /// captured ones, byte for byte.
    async fn replay_all(&self, vs: &[(String, Vec<u8>, Value)]) {
        for (name, bin, j) in vs {
            let replies = replay(("127.0.0.1", self.port), bin).await;
            assert_eq!(
                hex::encode(&replies),
                j["server_bytes_hex"].as_str().unwrap(),
                "{name}: replies"
            );
        }
    }

    /// `logship_output_delivered_events_total` of the output `plugin_id`.
    async fn delivered(&self, plugin_id: &str) -> f64 {
        let body = http()
            .get(&self.metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
            .expect("the exposition parses");
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "logship_output_delivered_events_total"
                    && s.labels.get("plugin_id") == Some(plugin_id)
            })
            .map_or(0.0, |s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                ref v => panic!("not a counter: {v:?}"),
            })
    }

    /// Waits (at most 60 s) until `plugin_id` has delivered `n` events.
    async fn wait_delivered(&self, plugin_id: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.delivered(plugin_id).await;
            if got == n as f64 {
                return;
            }
            assert!(got < n as f64, "{plugin_id} delivered {got} > {n}");
            assert!(
                Instant::now() < deadline,
                "{plugin_id} delivered {got} of {n} in 60 s; log:\n{}",
                self.child.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM; the exit must be clean. Returns the stats line of the elasticsearch output.
    fn stop(mut self) -> (Value, Vec<String>) {
        let status = self.child.stop(40);
        let log = self.child.log.lock().unwrap().join("\n");
        assert!(status.success(), "{status:?}; log:\n{log}");
        let stats = self
            .child
            .log_fields("elasticsearch output stopped")
            .unwrap_or_else(|| panic!("no stats line in:\n{log}"));
        let stdout = self.child.stdout.lock().unwrap().clone();
        (stats, stdout)
    }

    /// The fields of every `configuration warning` log line.
    fn warnings(&self) -> Vec<Value> {
        self.child
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "configuration warning" && v["level"] == "WARN")
            .map(|v| v["fields"].clone())
            .collect()
    }
}

/// Refreshes `pattern` and counts its documents whose fields equal `terms` (all of them;
/// none: every document).
async fn count(es: &str, pattern: &str, terms: &[(&str, Value)]) -> u64 {
    let c = http();
    json(c.post(format!("{es}/{pattern}/_refresh"))).await;
    let filter: Vec<Value> = terms
        .iter()
        .map(|(f, v)| serde_json::json!({"term": {*f: v}}))
        .collect();
    let q = serde_json::json!({"query": {"bool": {"filter": filter}}});
    let v = json(c.post(format!("{es}/{pattern}/_count")).json(&q)).await;
    v["count"].as_u64().unwrap()
}

/// Deletes the indices of `pattern` (a test's own prefix).
async fn delete_indices(es: &str, pattern: &str) {
    json(http().delete(format!("{es}/{pattern}"))).await;
}

/// What a run against the node needs: its URL, host and port, a temporary directory, and an
/// index prefix of the test's own. `None`: skip (no node, and services not required).
struct Node {
    es: String,
    host: String,
    port: String,
    dir: tempfile::TempDir,
    prefix: String,
}

fn node(test: &str) -> Option<Node> {
    let es = es_url()?;
    let u = reqwest::Url::parse(&es).unwrap();
    Some(Node {
        host: u.host_str().unwrap().to_string(),
        port: u.port().unwrap().to_string(),
        es,
        dir: tempfile::tempdir().unwrap(),
        prefix: format!("corpus-{test}-{}", es_common::run_id()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_conf_takes_the_fluent_bit_5_vectors() {
    let Some(Node {
        es,
        host,
        port,
        dir,
        ..
    }) = node("aggregator")
    else {
        return;
    };
    let conf = with_monitor(dir.path(), &repo().join("fluentd/aggregator.conf"));
    let run = Run::start(
        Command::new(BIN)
            .args(["run", "-c"])
            .arg(&conf)
            .env("AGGREGATOR_PORT", "0")
            .env("AGGREGATOR_BIND", "127.0.0.1")
            .env("ELASTICSEARCH_HOST", host)
            .env("ELASTICSEARCH_PORT", port)
            .env(
                "FLUENTD_TEMPLATE_FILE",
                repo().join("elk/fluentd-template.json"),
            )
            .env("AGGREGATOR_BUFFER_PATH", dir.path().join("buffer")),
    );
    let vs = vectors("flb5_");
    assert_eq!(vs.len(), 6, "the Fluent Bit 5 vectors");
    // `docker.api` (send_options) goes to Elasticsearch, `app.api` (the others) to stdout.
    let (to_es, to_stdout): (Vec<_>, Vec<_>) = vs
        .iter()
        .cloned()
        .partition(|(_, _, j)| j["events"][0]["tag"] == "docker.api");
    let (es_events, es_docs) = events_and_documents(&to_es);
    let (es_events, stdout_events) = (es_events.len(), events_and_documents(&to_stdout).0.len());
    assert_eq!((es_events, es_docs.len(), stdout_events), (1000, 1, 50));
    run.replay_all(&vs).await;
    run.wait_delivered("out_es", es_events).await;
    let (stats, stdout) = run.stop();
    assert_eq!(stats["received"], 1000, "{stats}");
    let (indexed, duplicates) = (
        stats["indexed"].as_u64().unwrap(),
        stats["duplicates"].as_u64().unwrap(),
    );
    assert_eq!(indexed + duplicates, 1000, "{stats}");
    assert_eq!(
        (stats["dead_lettered"].as_u64(), stats["retried"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    // The 1000 identical events are one document (deterministic _id), in the index of their
    // time, with the bunyan line expanded by the aggregator's parser filter.
    let doc = [
        (
            "container_id",
            serde_json::json!("7f3a9c1e5b2d48f6a0c4e8b1d3f5a7c9e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1"),
        ),
        ("tag", serde_json::json!("docker.api")),
        ("msg.keyword", serde_json::json!("request completed")),
        ("level", serde_json::json!(30)),
    ];
    assert_eq!(count(&es, "fluentd-20250314", &doc).await, 1);
    // stdout: one line per app.api event; the non-empty metadata shown under `_metadata`
    // (the default `metadata_key`), the empty maps and plain times not.
    let lines: Vec<Value> = stdout
        .iter()
        .filter(|l| l.contains(" app.api: "))
        .map(|l| serde_json::from_str(l.split_once(" app.api: ").unwrap().1).unwrap())
        .collect();
    assert_eq!(lines.len(), 50, "{stdout:#?}");
    let with_metadata: Vec<&Value> = lines
        .iter()
        .filter(|r| r.get("_metadata").is_some())
        .collect();
    assert_eq!(with_metadata.len(), 10);
    for r in with_metadata {
        assert_eq!(
            r["_metadata"],
            serde_json::json!({"stream": "stdout", "k8s": {"pod": "api-1"}})
        );
        assert_eq!(r["container_name"], "/api");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn efk_guide_conf_takes_the_docker_vectors() {
    let Some(Node {
        es,
        host,
        port,
        dir,
        prefix,
    }) = node("efk")
    else {
        return;
    };
    // The guide's fixed names, pointed at the test node, a free port and a prefix of its own.
    let mut text =
        std::fs::read_to_string(repo().join("logship/tests/configs/efk_guide.conf")).unwrap();
    for (from, to) in [
        ("host elasticsearch", format!("host {host}")),
        ("port 9200", format!("port {port}")),
        ("port 24224", "port 0".to_string()),
        ("bind 0.0.0.0", "bind 127.0.0.1".to_string()),
        (
            "logstash_prefix fluentd",
            format!("logstash_prefix {prefix}"),
        ),
    ] {
        assert!(text.contains(from), "efk_guide.conf has no '{from}'");
        text = text.replace(from, &to);
    }
    let edited = dir.path().join("efk_guide.conf");
    std::fs::write(&edited, text).unwrap();
    let run = Run::start(
        Command::new(BIN)
            .args(["run", "-c"])
            .arg(with_monitor(dir.path(), &edited)),
    );
    let w = run.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0]["warning"].as_str().unwrap().starts_with("'flush_interval' in <store> (@type elasticsearch) is Fluentd v0.12's form: read as 'flush_interval 1s' in <buffer>"), "{w:?}");
    let vs = vectors("go_docker_");
    let (events, docs) = events_and_documents(&vs);
    let events = events.len();
    assert_eq!((events, docs.len()), (44, 29));
    run.replay_all(&vs).await;
    run.wait_delivered("out_elasticsearch.0", events).await;
    let (stats, stdout) = run.stop();
    assert_eq!(stats["received"], events, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    let pattern = format!("{prefix}-*");
    assert_eq!(count(&es, &pattern, &[]).await, docs.len() as u64);
    // tag_key @log_name with include_tag_key (dynamic mapping: a text field with .keyword).
    for t in ["7f3a9c1e5b2d", "docker.api_server.2.7f3a9c1e5b2d"] {
        let q = [("@log_name.keyword", serde_json::json!(t))];
        assert_eq!(count(&es, &pattern, &q).await, with_tag(&docs, t), "{t}");
    }
    // The stdout store prints every event, duplicates too.
    assert_eq!(
        stdout.iter().filter(|l| l.contains(": {")).count(),
        events,
        "{stdout:#?}"
    );
    delete_indices(&es, &pattern).await;
}

#[test]
fn k8s_daemonset_conf_checks_with_no_variable_set() {
    let out = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(repo().join("logship/tests/configs/k8s_daemonset.conf"))
        .env_clear()
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("forward 0.0.0.0:24224"), "{printed}");
    assert!(
        printed.contains("elasticsearch hosts=elasticsearch:9200 index=logstash-%Y.%m.%d"),
        "{printed}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn efk_guide_conf_checks_with_a_warning_on_stderr() {
    let path = repo().join("logship/tests/configs/efk_guide.conf");
    let out = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let (printed, warned) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{printed}\n{warned}");
    assert_eq!(
        warned,
        format!("{}:28: warning: 'flush_interval' in <store> (@type elasticsearch) is Fluentd v0.12's form: read as 'flush_interval 1s' in <buffer>; write it there (Fluentd v1)\n", path.display())
    );
    assert!(
        printed.contains("  type_name: logship never sends a document `_type`"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_daemonset_conf_runs_with_every_variable_set() {
    let Some(Node {
        es,
        host,
        port,
        dir,
        prefix,
    }) = node("k8s")
    else {
        return;
    };
    let template = repo().join("elk/fluentd-template.json");
    let template = template.to_str().unwrap();
    let vars = [
        ("FLUENT_FORWARD_PORT", "0"),
        ("FLUENT_FORWARD_BIND", "127.0.0.1"),
        ("FLUENT_FORWARD_SKIP_INVALID_EVENT", "false"),
        ("FLUENT_ELASTICSEARCH_HOST", host.as_str()),
        ("FLUENT_ELASTICSEARCH_PORT", port.as_str()),
        // Set, and empty: Ruby's "" is a value (no path prefix).
        ("FLUENT_ELASTICSEARCH_PATH", ""),
        ("FLUENT_ELASTICSEARCH_SCHEME", "http"),
        ("FLUENT_ELASTICSEARCH_SSL_VERIFY", "true"),
        ("FLUENT_ELASTICSEARCH_SSL_VERSION", "TLSv1_2"),
        ("FLUENT_ELASTICSEARCH_USER", "fluent"),
        ("FLUENT_ELASTICSEARCH_PASSWORD", "not-a-real-password"),
        ("FLUENT_ELASTICSEARCH_RELOAD_CONNECTIONS", "false"),
        ("FLUENT_ELASTICSEARCH_RECONNECT_ON_ERROR", "true"),
        ("FLUENT_ELASTICSEARCH_RELOAD_ON_FAILURE", "true"),
        ("FLUENT_ELASTICSEARCH_LOG_ES_400_REASON", "true"),
        ("FLUENT_ELASTICSEARCH_LOGSTASH_PREFIX", prefix.as_str()),
        ("FLUENT_ELASTICSEARCH_LOGSTASH_DATEFORMAT", "%Y.%m.%d"),
        ("FLUENT_ELASTICSEARCH_LOGSTASH_FORMAT", "true"),
        ("FLUENT_ELASTICSEARCH_LOGSTASH_INDEX_NAME", "unused"),
        ("FLUENT_ELASTICSEARCH_TARGET_INDEX_KEY", "index"),
        ("FLUENT_ELASTICSEARCH_LOGSTASH_TYPE_NAME", "_doc"),
        ("FLUENT_ELASTICSEARCH_INCLUDE_TIMESTAMP", "true"),
        // The shipped template (for fluentd-*), installed unless it is there already.
        ("FLUENT_ELASTICSEARCH_TEMPLATE_NAME", "fluentd"),
        ("FLUENT_ELASTICSEARCH_TEMPLATE_FILE", template),
        ("FLUENT_ELASTICSEARCH_TEMPLATE_OVERWRITE", "false"),
        (
            "FLUENT_SNIFFER_CLASS_NAME",
            "Fluent::Plugin::ElasticsearchSimpleSniffer",
        ),
        ("FLUENT_ELASTICSEARCH_REQUEST_TIMEOUT", "15s"),
        ("FLUENT_ELASTICSEARCH_SUPPRESS_TYPE_NAME", "true"),
        ("FLUENT_ELASTICSEARCH_BUFFER_FLUSH_THREAD_COUNT", "2"),
        ("FLUENT_ELASTICSEARCH_BUFFER_FLUSH_INTERVAL", "1s"),
        ("FLUENT_ELASTICSEARCH_BUFFER_CHUNK_LIMIT_SIZE", "1M"),
        ("FLUENT_ELASTICSEARCH_BUFFER_QUEUE_LIMIT_LENGTH", "16"),
        ("FLUENT_ELASTICSEARCH_BUFFER_RETRY_MAX_INTERVAL", "5"),
    ];
    let conf = with_monitor(
        dir.path(),
        &repo().join("logship/tests/configs/k8s_daemonset.conf"),
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "-c"]).arg(conf);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let run = Run::start(&mut cmd);
    assert!(run.warnings().is_empty());
    let vs = vectors("go_docker_");
    let (events, docs) = events_and_documents(&vs);
    let events = events.len();
    run.replay_all(&vs).await;
    run.wait_delivered("out_es", events).await;
    let (stats, _) = run.stop();
    assert_eq!(stats["received"], events, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    let pattern = format!("{prefix}-*");
    // Daily indices named by the variables (logstash_format, prefix, date format).
    assert_eq!(
        count(&es, &format!("{prefix}-2025.03.14"), &[]).await,
        docs.len() as u64
    );
    for t in ["7f3a9c1e5b2d", "docker.api_server.2.7f3a9c1e5b2d"] {
        let q = [("tag.keyword", serde_json::json!(t))];
        assert_eq!(count(&es, &pattern, &q).await, with_tag(&docs, t), "{t}");
    }
    delete_indices(&es, &pattern).await;
}
