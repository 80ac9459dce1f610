//! The elasticsearch output and `logship tail` against a secured cluster: the test services'
//! nginx (TLS with a private CA, basic auth, an API-key rule, a mutual-TLS listener, an
//! expired and a wrong-name certificate) in front of the real OpenSearch node, driven by real
//! `logship run` processes.
//!
//! Each case has its exact outcome: the right CA, `ssl_verify false`, mutual TLS (with an
//! encrypted client key) and an API key deliver every event once; a wrong CA, an expired or
//! wrong-name certificate, a missing client certificate, a wrong password, a wrong or missing
//! API key deliver nothing and say so at start and at each flush (rate-limited) with the cause
//! and the parameter that fixes it; with a file buffer, a restart with the fixed config
//! delivers every buffered event exactly once. No password, key or passphrase appears in
//! logship's stderr, `check-config`'s output, `/api/plugins.json`, `/metrics` or tail's output.

mod es_common;
mod logship_child;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use es_common::*;
use logship::event::EventTime;
use serde_json::{json, Value};

/// What `scripts/test-services.sh` prints for the TLS proxy.
struct Secured {
    /// The node itself (plain HTTP), to count documents.
    es: String,
    port: u16,
    user: String,
    password: String,
    ca_file: String,
    wrong_ca_file: String,
    api_key: String,
    mtls_port: u16,
    client_cert: String,
    client_key_encrypted: String,
    client_key_pass: String,
    other_client_cert: String,
    other_client_key: String,
    expired_port: u16,
    wrong_name_port: u16,
}

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set (scripts/test-services.sh prints it)"))
}

fn port_of(url: &str) -> u16 {
    reqwest::Url::parse(url).unwrap().port().unwrap()
}

impl Secured {
    /// `None` means "skip" (no services and `REQUIRE_SERVICES` unset).
    fn from_env() -> Option<Secured> {
        let es = es_url()?;
        if std::env::var("TEST_ELASTICSEARCH_TLS_URL").is_err()
            && std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1")
        {
            eprintln!("skipping: TEST_ELASTICSEARCH_TLS_URL is not set (run scripts/test.sh)");
            return None;
        }
        let tls_url = reqwest::Url::parse(&var("TEST_ELASTICSEARCH_TLS_URL")).unwrap();
        Some(Secured {
            es,
            port: tls_url.port().unwrap(),
            user: tls_url.username().to_string(),
            password: tls_url.password().unwrap().to_string(),
            ca_file: var("TEST_ELASTICSEARCH_CA_FILE"),
            wrong_ca_file: var("TEST_ELASTICSEARCH_WRONG_CA_FILE"),
            api_key: var("TEST_ELASTICSEARCH_API_KEY"),
            mtls_port: port_of(&var("TEST_ELASTICSEARCH_MTLS_URL")),
            client_cert: var("TEST_ELASTICSEARCH_CLIENT_CERT"),
            client_key_encrypted: var("TEST_ELASTICSEARCH_CLIENT_KEY_ENCRYPTED"),
            client_key_pass: var("TEST_ELASTICSEARCH_CLIENT_KEY_PASS"),
            other_client_cert: var("TEST_ELASTICSEARCH_OTHER_CLIENT_CERT"),
            other_client_key: var("TEST_ELASTICSEARCH_OTHER_CLIENT_KEY"),
            expired_port: port_of(&var("TEST_ELASTICSEARCH_EXPIRED_URL")),
            wrong_name_port: port_of(&var("TEST_ELASTICSEARCH_WRONG_NAME_URL")),
        })
    }

    /// The environment of every logship: the secrets reach the config through
    /// `"#{ENV['...']}"`, never written into it.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ES_USER", self.user.clone()),
            ("ES_PASSWORD", self.password.clone()),
            ("ES_API_KEY", self.api_key.clone()),
            ("ES_CLIENT_KEY_PASS", self.client_key_pass.clone()),
        ]
    }

    /// Every secret, and the forms a leak could take (the API key's parts and its base64,
    /// basic auth's base64).
    fn secrets(&self) -> Vec<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = self.api_key.split_once(':').unwrap().1.to_string();
        vec![
            self.password.clone(),
            self.api_key.clone(),
            key,
            b64.encode(&self.api_key),
            b64.encode(format!("{}:{}", self.user, self.password)),
            self.client_key_pass.clone(),
        ]
    }

    fn assert_no_secret(&self, what: &str, text: &str) {
        for s in self.secrets() {
            assert!(!text.contains(&s), "a secret appears in {what}:\n{text}");
        }
    }
}

/// A pipeline of Docker records with bunyan lines into `fluentd-tls-RUN` over https on `port`,
/// with `settings` (credentials, TLS) and `buffer` lines added.
fn conf(run: &str, port: u16, settings: &str, buffer: &str) -> String {
    format!(
        r#"<source>
  @type forward
  port 0
  bind 127.0.0.1
</source>
<source>
  @type monitor_agent
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
  host 127.0.0.1
  port {port}
  scheme https
  index_name fluentd-tls-{run}
{settings}
  <buffer>
{buffer}
    flush_interval 0.2
    retry_wait 0.2
    retry_max_interval 0.5
  </buffer>
</match>
"#
    )
}

fn start(s: &Secured, conf: &str) -> Logship {
    let env = s.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Logship::start_conf_env(&s.es, conf, tempfile::tempdir().unwrap(), &env)
}

/// The fields of the first log line for which `pred` holds; panics after `secs`.
fn wait_line(ls: &Logship, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        {
            let lines = ls.lines.lock().unwrap();
            if let Some(v) = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| pred(v))
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {secs}s; stderr:\n{}",
                lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_start_refusal(v: &Value) -> bool {
    v["level"] == "ERROR" && v["target"] == "logship::output::elasticsearch::check"
}

fn is_flush_refusal(v: &Value) -> bool {
    v["level"] == "ERROR" && v["target"] == "logship::output::elasticsearch::service"
}

fn stderr_of(ls: &Logship) -> String {
    ls.lines.lock().unwrap().join("\n")
}

/// Sends `n` acked events of `run`.
async fn send(ls: &Logship, run: &str, n: usize) {
    let mut client = ls.client().await;
    for i in 0..n {
        let t = EventTime::now();
        let line = bunyan_line(run, i, t, json!(200));
        client
            .send_message("docker.api", t, &docker_record(&line, false))
            .await
            .unwrap();
    }
}

/// The distinct `request_id`s of `run`'s documents (at most 10,000).
async fn request_ids(es: &str, run: &str) -> (usize, HashSet<String>) {
    let c = http();
    let _ = c.post(format!("{es}/fluentd-*/_refresh")).send().await;
    let v = json(
        c.get(format!("{es}/fluentd-*/_search"))
            .query(&[("q", format!("run:{run}")), ("size", "10000".to_string())]),
    )
    .await;
    let hits = v["hits"]["hits"].as_array().unwrap();
    let ids = hits
        .iter()
        .map(|h| h["_source"]["request_id"].as_str().unwrap().to_string())
        .collect();
    (hits.len(), ids)
}

async fn drop_index(es: &str, run: &str) {
    let _ = http()
        .delete(format!("{es}/fluentd-tls-{run}"))
        .send()
        .await;
}

/// Starts logship with the elasticsearch `settings` that `case` gives for the test services
/// (and the port to use), checks the start-up line and its `credentials`, sends 40 events,
/// checks that each arrives once and that no secret was logged; returns the stderr (`None`:
/// skipped).
async fn delivers(
    case: impl FnOnce(&Secured) -> (u16, String),
    credentials: &str,
) -> Option<String> {
    let s = Secured::from_env()?;
    let run = run_id();
    let n = 40;
    let (port, settings) = case(&s);
    let ls = start(&s, &conf(&run, port, &settings, ""));
    let ok = wait_line(&ls, 20, "'connected to Elasticsearch' line", |v| {
        v["fields"]["message"] == "connected to Elasticsearch"
    });
    assert_eq!(ok["fields"]["credentials"], credentials, "{ok}");
    assert_eq!(ok["fields"]["version"], "OpenSearch 2.19.6", "{ok}");
    send(&ls, &run, n).await;
    wait_count(&s.es, &run, n as u64, 60).await;
    let stderr = stderr_of(&ls);
    let stats = ls.stop();
    assert_eq!(stats["indexed"], n as u64, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    assert_eq!(stats["failed_requests"], 0, "{stats}");
    s.assert_no_secret("logship's stderr", &stderr);
    drop_index(&s.es, &run).await;
    Some(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_ca_and_basic_auth_from_the_environment_deliver_every_event_once() {
    delivers(
        |s| (s.port, format!("  user \"#{{ENV['ES_USER']}}\"\n  password \"#{{ENV['ES_PASSWORD']}}\"\n  ca_file {}\n  ssl_min_version TLSv1_2\n  ssl_max_version TLSv1_3", s.ca_file)),
        "basic auth as user \"logship\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_a_file_and_tls_1_3_only() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("es_password");
    delivers(
        |s| {
            std::fs::write(&pw, format!("{}\n", s.password)).unwrap();
            (s.port, format!("  user logship\n  password_file {}\n  ca_file {}\n  ssl_min_version TLSv1_3\n  ssl_max_version TLSv1_3", pw.display(), s.ca_file))
        },
        "basic auth as user \"logship\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_delivers_every_event_once() {
    delivers(
        |s| {
            (
                s.port,
                format!(
                    "  api_key \"#{{ENV['ES_API_KEY']}}\"\n  ca_file {}",
                    s.ca_file
                ),
            )
        },
        "API key \"logship-test\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_an_encrypted_client_key_delivers_every_event_once() {
    delivers(
        |s| (s.mtls_port, format!("  ca_file {}\n  client_cert {}\n  client_key {}\n  client_key_pass \"#{{ENV['ES_CLIENT_KEY_PASS']}}\"", s.ca_file, s.client_cert, s.client_key_encrypted)),
        "no credentials",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_verify_false_accepts_an_expired_certificate_and_says_so() {
    // Credentials in the host's URL this time (fluent-plugin-elasticsearch's other form).
    let Some(stderr) = delivers(
        |s| (s.expired_port, format!("  hosts \"https://logship:#{{ENV['ES_PASSWORD']}}@127.0.0.1:{}\"\n  ssl_verify false", s.expired_port)),
        "basic auth as user \"logship\"",
    )
    .await
    else {
        return;
    };
    assert!(
        stderr.contains("TLS certificate verification is off (ssl_verify false)"),
        "{stderr}"
    );
}

/// Starts logship on `conf`, which the cluster refuses: the start-up ERROR, then `n` events
/// sent and acked (buffered), the flush ERROR, nothing in the index. Returns both ERROR lines'
/// fields and the running logship.
async fn refused(s: &Secured, run: &str, conf: &str) -> (Value, Value, Logship) {
    let ls = start(s, conf);
    let at_start = wait_line(&ls, 20, "start-up ERROR", is_start_refusal)["fields"].clone();
    send(&ls, run, 10).await;
    let at_flush = wait_line(&ls, 20, "flush ERROR", is_flush_refusal)["fields"].clone();
    assert_eq!(at_flush["cause"], at_start["cause"], "{at_flush}");
    assert_eq!(at_flush["fix"], at_start["fix"], "{at_flush}");
    assert_eq!(count(&s.es, run).await, 0);
    s.assert_no_secret("logship's stderr", &stderr_of(&ls));
    (at_start, at_flush, ls)
}

fn assert_cause_and_fix(e: &Value, cause: &str, fix: &str) {
    let (c, f) = (e["cause"].as_str().unwrap(), e["fix"].as_str().unwrap());
    assert!(c.contains(cause), "cause {c:?} does not say {cause:?}");
    assert!(f.contains(fix), "fix {f:?} does not name {fix:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_cause_and_the_parameter() {
    let Some(s) = Secured::from_env() else { return };
    let basic = "  user \"#{ENV['ES_USER']}\"\n  password \"#{ENV['ES_PASSWORD']}\"";
    // (settings, port, what the cause says, what the fix says)
    let cases: Vec<(String, u16, String, &str)> = vec![
        (
            format!("{basic}\n  ca_file {}", s.wrong_ca_file),
            s.port,
            format!(
                "is not signed by a CA logship trusts (it trusts ca_file {})",
                s.wrong_ca_file
            ),
            "set ca_file to the PEM file of the CA that signed the server's certificate",
        ),
        (
            format!("{basic}\n  ca_file {}", s.ca_file),
            s.expired_port,
            "expired on 2025-02-01 00:00:00 UTC".into(),
            "renew the server's certificate (ssl_verify false skips the check, insecurely)",
        ),
        (
            format!("{basic}\n  ca_file {}", s.ca_file),
            s.wrong_name_port,
            "is not valid for 127.0.0.1 (it is for wrong-name.invalid)".into(),
            "connect with a name the certificate carries in its subjectAltName",
        ),
        (
            format!("  ca_file {}", s.ca_file),
            s.mtls_port,
            "the server requires a client certificate and logship sent none".into(),
            "set client_cert and client_key (and client_key_pass for an encrypted key)",
        ),
        (
            format!(
                "  ca_file {}\n  client_cert {}\n  client_key {}",
                s.ca_file, s.other_client_cert, s.other_client_key
            ),
            s.mtls_port,
            "the server did not accept logship's client certificate".into(),
            "use a client_cert signed by a CA the server trusts",
        ),
        (
            format!(
                "  user logship\n  password not-the-password\n  ca_file {}",
                s.ca_file
            ),
            s.port,
            "user \"logship\" and its password were not accepted".into(),
            "set the right user and password",
        ),
        (
            // https to the node's plain-HTTP port
            format!("{basic}\n  ca_file {}", s.ca_file),
            port_of(&s.es),
            "did not answer in TLS (is it a plain-HTTP port?)".into(),
            "use scheme http for this host, or the port where it speaks HTTPS",
        ),
        (
            // plain HTTP to the proxy's HTTPS port (a URL's scheme wins over `scheme`)
            format!("{basic}\n  hosts http://127.0.0.1:{}", s.port),
            s.port,
            "this port speaks HTTPS and logship sent plain HTTP".into(),
            "use scheme https",
        ),
        (
            format!(
                "  api_key logship-test:not-the-key\n  ca_file {}",
                s.ca_file
            ),
            s.port,
            "API key \"logship-test\" was not accepted".into(),
            "set a valid api_key",
        ),
        (
            format!("  ca_file {}", s.ca_file),
            s.port,
            "the cluster requires authentication and logship sent none".into(),
            "set user and password, or api_key",
        ),
    ];
    for (settings, port, cause, fix) in &cases {
        let run = run_id();
        let (at_start, _, ls) = refused(&s, &run, &conf(&run, *port, settings, "")).await;
        assert_cause_and_fix(&at_start, cause, fix);
        drop(ls);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_flush_logs_at_most_three_errors_a_minute() {
    let Some(s) = Secured::from_env() else { return };
    let run = run_id();
    let settings = format!(
        "  user logship\n  password not-the-password\n  ca_file {}",
        s.ca_file
    );
    let (_, _, ls) = refused(&s, &run, &conf(&run, s.port, &settings, "")).await;
    // Retries every 0.5 s at most: wait until at least ten more bulk requests have failed.
    let failed = |ls: &Logship| {
        ls.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(is_flush_refusal)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = monitor_port(&ls);
    loop {
        let m = reqwest::get(format!("http://127.0.0.1:{port}/api/plugins.json"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let es = m["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == "elasticsearch")
            .unwrap()
            .clone();
        if es["rollback_count"].as_u64().unwrap() >= 12 {
            break;
        }
        assert!(Instant::now() < deadline, "too few retries: {es}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(failed(&ls), 3, "{}", stderr_of(&ls));
}

/// The port of the monitor_agent source.
fn monitor_port(ls: &Logship) -> u16 {
    let v = wait_line(ls, 10, "monitor_agent listening line", |v| {
        v["fields"]["message"] == "listening" && v["fields"]["source"] == "monitor_agent"
    });
    logship_child::listening_port(&v["fields"])
}

/// The file-buffer guarantee across a fixed configuration: refused events stay on disk, and
/// the restart with the right setting delivers each exactly once.
async fn buffered_until_fixed(s: &Secured, bad: &str, good: &str, cause: &str, fix: &str) {
    let run = run_id();
    let n = 100;
    let buffer_dir = tempfile::tempdir().unwrap();
    let buffer = format!(
        "    @type file\n    path {}\n    chunk_limit_records 30",
        buffer_dir.path().join("es").display()
    );
    let ls = start(s, &conf(&run, s.port, bad, &buffer));
    let at_start = wait_line(&ls, 20, "start-up ERROR", is_start_refusal)["fields"].clone();
    assert_cause_and_fix(&at_start, cause, fix);
    send(&ls, &run, n).await;
    wait_line(&ls, 20, "flush ERROR", is_flush_refusal);
    assert_eq!(count(&s.es, &run).await, 0);
    s.assert_no_secret("logship's stderr", &stderr_of(&ls));
    let stats = ls.stop();
    assert_eq!(stats["received"], n as u64, "{stats}");
    assert_eq!(stats["indexed"], 0, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    assert_eq!(count(&s.es, &run).await, 0);

    let ls = start(s, &conf(&run, s.port, good, &buffer));
    wait_count(&s.es, &run, n as u64, 60).await;
    let (docs, ids) = request_ids(&s.es, &run).await;
    assert_eq!((docs, ids.len()), (n, n), "duplicates or losses");
    let stderr = stderr_of(&ls);
    let stats = ls.stop();
    assert_eq!(stats["indexed"], n as u64, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    assert!(!stderr.contains("\"level\":\"ERROR\""), "{stderr}");
    s.assert_no_secret("logship's stderr", &stderr);
    drop_index(&s.es, &run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_with_a_file_buffer_loses_nothing_and_the_fix_delivers_once() {
    let Some(s) = Secured::from_env() else { return };
    let good = format!(
        "  user \"#{{ENV['ES_USER']}}\"\n  password \"#{{ENV['ES_PASSWORD']}}\"\n  ca_file {}",
        s.ca_file
    );
    let bad = format!(
        "  user logship\n  password not-the-password\n  ca_file {}",
        s.ca_file
    );
    buffered_until_fixed(
        &s,
        &bad,
        &good,
        "its password were not accepted",
        "user and password",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_with_a_file_buffer_loses_nothing_and_the_fix_delivers_once() {
    let Some(s) = Secured::from_env() else { return };
    let basic = "  user \"#{ENV['ES_USER']}\"\n  password \"#{ENV['ES_PASSWORD']}\"";
    let good = format!("{basic}\n  ca_file {}", s.ca_file);
    let bad = format!("{basic}\n  ca_file {}", s.wrong_ca_file);
    buffered_until_fixed(
        &s,
        &bad,
        &good,
        "not signed by a CA logship trusts",
        "ca_file",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_check_config_and_the_monitoring_endpoints() {
    let Some(s) = Secured::from_env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = run_id();
    // Secrets written into the configs themselves, the worst case.
    let basic = format!(
        "  user logship\n  password {}\n  ca_file {}\n  client_cert {}\n  client_key {}\n  client_key_pass {}",
        s.password, s.ca_file, s.client_cert, s.client_key_encrypted, s.client_key_pass
    );
    let key = format!("  api_key {}\n  ca_file {}", s.api_key, s.ca_file);
    let broken = format!("{basic}\n  ssl_min_version TLSv9");
    let in_url = format!(
        "  hosts https://logship:{}@127.0.0.1:{}\n  ca_file {}",
        s.password, s.port, s.ca_file
    );
    for (name, settings) in [
        ("basic", &basic),
        ("key", &key),
        ("broken", &broken),
        ("url", &in_url),
    ] {
        let path = dir.path().join(format!("{name}.conf"));
        std::fs::write(&path, conf(&run, s.port, settings, "")).unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), name != "broken", "{text}");
        s.assert_no_secret("check-config's output", &text);
        if name == "basic" {
            assert!(text.contains("basic auth as user \"logship\""), "{text}");
        }
    }
    // A running logship with the password in its config: its monitoring endpoints.
    let ls = start(&s, &conf(&run, s.mtls_port, &basic, ""));
    wait_line(&ls, 20, "'connected to Elasticsearch' line", |v| {
        v["fields"]["message"] == "connected to Elasticsearch"
    });
    send(&ls, &run, 5).await;
    wait_count(&s.es, &run, 5, 60).await;
    let port = monitor_port(&ls);
    for path in ["/api/plugins.json", "/metrics", "/healthz"] {
        let body = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        s.assert_no_secret(path, &body);
    }
    s.assert_no_secret("logship's stderr", &stderr_of(&ls));
    ls.stop();
    drop_index(&s.es, &run).await;
}

/// Runs `logship tail` with `args` and `env`; returns (exit code, stdout, stderr).
fn tail(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("tail")
        .args(args)
        .env_remove("ELASTICSEARCH_PASSWORD")
        .env_remove("ELASTICSEARCH_API_KEY")
        .envs(env.iter().copied())
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_takes_the_same_tls_and_auth_settings() {
    let Some(s) = Secured::from_env() else { return };
    let run = run_id();
    // Three documents in, through the plain node.
    let ls = Logship::start_conf(
        &s.es,
        &conf(&run, 0, "", "").replace(
            "  port 0\n  scheme https\n",
            &format!("  port {}\n", port_of(&s.es)),
        ),
        tempfile::tempdir().unwrap(),
    );
    send(&ls, &run, 3).await;
    wait_count(&s.es, &run, 3, 60).await;
    ls.stop();
    let index = format!("fluentd-tls-{run}");
    let base = format!("https://127.0.0.1:{}", s.port);
    let with_creds = format!("https://{}:{}@127.0.0.1:{}", s.user, s.password, s.port);
    let mtls = format!("https://127.0.0.1:{}", s.mtls_port);
    let common = ["-n", "10", "--json", "--index", &index];
    let ok = |r: &(i32, String, String), what: &str| {
        assert_eq!(r.0, 0, "{what}: {}", r.2);
        assert_eq!(r.1.lines().count(), 3, "{what}: {}", r.1);
        s.assert_no_secret(what, &format!("{}{}", r.1, r.2));
    };
    let args = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let run_tail = |a: Vec<String>, env: &[(&str, &str)]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        tail(&a, env)
    };
    // Credentials in the URL, the CA by option.
    ok(
        &run_tail(args(&["--url", &with_creds, "--ca-file", &s.ca_file]), &[]),
        "url credentials",
    );
    // The password from the environment.
    ok(
        &run_tail(
            args(&["--url", &base, "--user", &s.user, "--ca-file", &s.ca_file]),
            &[("ELASTICSEARCH_PASSWORD", &s.password)],
        ),
        "ELASTICSEARCH_PASSWORD",
    );
    // The API key from the environment.
    ok(
        &run_tail(
            args(&["--url", &base, "--ca-file", &s.ca_file]),
            &[("ELASTICSEARCH_API_KEY", &s.api_key)],
        ),
        "ELASTICSEARCH_API_KEY",
    );
    // Mutual TLS with the encrypted key.
    ok(
        &run_tail(
            args(&[
                "--url",
                &mtls,
                "--ca-file",
                &s.ca_file,
                "--client-cert",
                &s.client_cert,
                "--client-key",
                &s.client_key_encrypted,
            ]),
            &[("ELASTICSEARCH_CLIENT_KEY_PASS", &s.client_key_pass)],
        ),
        "mutual TLS",
    );
    // --insecure against the expired certificate.
    let expired = format!(
        "https://{}:{}@127.0.0.1:{}",
        s.user, s.password, s.expired_port
    );
    let r = run_tail(args(&["--url", &expired, "--insecure"]), &[]);
    ok(&r, "--insecure");
    assert!(
        r.2.contains("TLS certificate verification is off (--insecure)"),
        "{}",
        r.2
    );
    // Refusals: exit 1 with the cause and the option, also with -f.
    for (extra, env, cause, fix) in [
        (
            vec!["--url", &with_creds],
            vec![],
            "is not signed by a CA logship trusts",
            "--ca-file",
        ),
        (
            vec![
                "--url",
                &base,
                "--ca-file",
                &s.ca_file,
                "--user",
                "logship",
                "--password",
                "nope",
                "-f",
            ],
            vec![],
            "were not accepted",
            "--user and --password",
        ),
        (
            vec!["--url", &base, "--ca-file", &s.ca_file, "-f"],
            vec![],
            "requires authentication",
            "--api-key (ELASTICSEARCH_API_KEY)",
        ),
        (
            vec!["--url", &mtls, "--ca-file", &s.ca_file],
            vec![],
            "requires a client certificate",
            "--client-cert and --client-key",
        ),
        (
            vec!["--url", &base, "--ca-file", &s.ca_file],
            vec![("ELASTICSEARCH_API_KEY", "logship-test:nope")],
            "API key \"logship-test\" was not accepted",
            "--api-key",
        ),
    ] {
        let (code, out, err) = run_tail(args(&extra), &env);
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert_eq!(out, "", "{extra:?}");
        assert!(
            err.contains(cause) && err.contains("fix: ") && err.contains(fix),
            "{extra:?}: {err}"
        );
        s.assert_no_secret("tail's stderr", &err);
    }
    // --help shows which variables are read, never their values.
    let (_, help, _) = run_tail(
        vec!["--help".into()],
        &[
            ("ELASTICSEARCH_PASSWORD", &s.password),
            ("ELASTICSEARCH_API_KEY", &s.api_key),
        ],
    );
    assert!(help.contains("ELASTICSEARCH_PASSWORD"), "{help}");
    s.assert_no_secret("tail --help", &help);
    drop_index(&s.es, &run).await;
}
