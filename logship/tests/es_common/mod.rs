//! Shared by the `es_*` tests: the search engines of the test services ([`Engine`]: OpenSearch
//! 2.19 at `TEST_ELASTICSEARCH_URL`, Elasticsearch 7.10 at `TEST_ELASTICSEARCH7_URL`,
//! Elasticsearch 8.15 at `TEST_ELASTICSEARCH8_URL`; skip or fail per `REQUIRE_SERVICES`) and
//! [`on_every_engine!`], which turns one test body into one test per engine; `logship run -c fluentd/fluentd.conf` as a child process, Docker shaped
//! records sent with logship's own Forward client, and small search queries.
//! A test binary that uses it declares `mod logship_child;` (the child-process helper) too.
#![allow(dead_code, unused_macros, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use logship::event::EventTime;
use logship::forward::{ClientConfig, ForwardClient};
use serde_json::Value;

use crate::logship_child;

pub const BIN: &str = env!("CARGO_BIN_EXE_logship");

/// A search engine of the test services. Every Elasticsearch-facing test runs on each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// OpenSearch 2.19 (`TEST_ELASTICSEARCH_URL`, service `opensearch`).
    OpenSearch,
    /// Elasticsearch 7.10.2 (`TEST_ELASTICSEARCH7_URL`, service `elasticsearch7`).
    Elasticsearch7,
    /// Elasticsearch 8.15.5 (`TEST_ELASTICSEARCH8_URL`, service `elasticsearch8`).
    Elasticsearch8,
}

impl Engine {
    /// The variable `scripts/test-services.sh start` prints its URL in.
    pub fn url_var(self) -> &'static str {
        match self {
            Engine::OpenSearch => "TEST_ELASTICSEARCH_URL",
            Engine::Elasticsearch7 => "TEST_ELASTICSEARCH7_URL",
            Engine::Elasticsearch8 => "TEST_ELASTICSEARCH8_URL",
        }
    }

    /// Its name for `test-services.sh stop-service/start-service`.
    pub fn service(self) -> &'static str {
        match self {
            Engine::OpenSearch => "opensearch",
            Engine::Elasticsearch7 => "elasticsearch7",
            Engine::Elasticsearch8 => "elasticsearch8",
        }
    }

    /// What logship's version detection should report (`Product version`, prefix).
    pub fn describe_prefix(self) -> &'static str {
        match self {
            Engine::OpenSearch => "OpenSearch 2.",
            Engine::Elasticsearch7 => "Elasticsearch 7.10.",
            Engine::Elasticsearch8 => "Elasticsearch 8.15.",
        }
    }

    /// The node's URL without a trailing slash; `None` means "skip".
    pub fn url(self) -> Option<String> {
        service_url(self.url_var())
    }

    /// Every test of a binary that talks to this node takes its lock: the outage tests
    /// restart the node (which comes back empty), so nothing else may use it meanwhile.
    /// Tests on different engines run side by side.
    pub fn lock(self) -> &'static tokio::sync::Mutex<()> {
        static L: [std::sync::OnceLock<tokio::sync::Mutex<()>>; 3] = [
            std::sync::OnceLock::new(),
            std::sync::OnceLock::new(),
            std::sync::OnceLock::new(),
        ];
        L[self as usize].get_or_init(|| tokio::sync::Mutex::new(()))
    }

    /// `test-services.sh stop-service|start-service` for this node (`None`: skip, as for
    /// [`Engine::url`]).
    pub fn services_script() -> Option<String> {
        match std::env::var("TEST_SERVICES_SCRIPT") {
            Ok(s) if !s.is_empty() => Some(s),
            _ => {
                assert_ne!(
                    std::env::var("REQUIRE_SERVICES").as_deref(),
                    Ok("1"),
                    "TEST_SERVICES_SCRIPT is not set but REQUIRE_SERVICES=1"
                );
                eprintln!("skipping: TEST_SERVICES_SCRIPT is not set");
                None
            }
        }
    }

    /// Runs `test-services.sh CMD <service>` and asserts it succeeded.
    pub fn service_cmd(self, script: &str, cmd: &str) {
        let out = Command::new(script)
            .args([cmd, self.service()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd} {}: {}",
            self.service(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One `#[tokio::test]` per [`Engine`] for each `async fn NAME(engine: Engine)` listed, in
/// modules named after the engine: `opensearch::NAME`, `elasticsearch7::NAME` and
/// `elasticsearch8::NAME`.
macro_rules! on_every_engine {
    ($($name:ident),+ $(,)?) => {
        mod opensearch {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::es_common::Engine::OpenSearch).await
                }
            )+
        }
        mod elasticsearch7 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::es_common::Engine::Elasticsearch7).await
                }
            )+
        }
        mod elasticsearch8 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::es_common::Engine::Elasticsearch8).await
                }
            )+
        }
    };
}
pub(crate) use on_every_engine;

/// The URL in `var` without a trailing slash; `None` means "skip". Panics if it is missing
/// while `REQUIRE_SERVICES=1`.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().trim_end_matches('/').to_string()),
        _ if std::env::var("REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{var} is not set but REQUIRE_SERVICES=1 (start them: scripts/test-services.sh start)")
        }
        _ => {
            eprintln!("skipping: {var} is not set (run scripts/test.sh)");
            None
        }
    }
}

/// The OpenSearch node's URL (benchmarks and tests that need only one engine).
pub fn es_url() -> Option<String> {
    Engine::OpenSearch.url()
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A random hex id that marks the documents of one test.
pub fn run_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `fluentd-YYYYMMDD` for now (UTC).
pub fn today_index() -> String {
    format!(
        "fluentd-{}",
        logship::output::timefmt::strftime("%Y%m%d", EventTime::now().secs)
    )
}

/// A running `logship run`.
pub struct Logship {
    pub child: Child,
    pub port: u16,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

impl Logship {
    /// Starts `logship run` on fluentd/fluentd.conf pointed at `es` (host, port, template by
    /// env), listening on a free port, with `edits` (from, to) applied to the config text.
    pub fn start(es: &str, edits: &[(&str, &str)]) -> Logship {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = std::fs::read_to_string(repo().join("fluentd/fluentd.conf")).unwrap();
        conf = conf.replace("port 24224", "port 0");
        // The monitoring source too (tests run in parallel).
        conf = conf.replace("port 24231", "port 0");
        for (from, to) in edits {
            assert!(conf.contains(from), "fluentd.conf has no '{from}'");
            conf = conf.replace(from, to);
        }
        Self::start_conf(es, &conf, dir)
    }

    /// Starts `logship run` on the config text `conf` (env as for [`Logship::start`]).
    pub fn start_conf(es: &str, conf: &str, dir: tempfile::TempDir) -> Logship {
        Self::start_conf_env(es, conf, dir, &[])
    }

    /// [`Logship::start_conf`] with more environment variables (`"#{ENV['X']}"` in `conf`).
    pub fn start_conf_env(
        es: &str,
        conf: &str,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
    ) -> Logship {
        let path = dir.path().join("fluentd.conf");
        std::fs::write(&path, conf).unwrap();
        let u = reqwest::Url::parse(es).unwrap();
        let (child, lines, rx) = logship_child::spawn(
            Command::new(BIN)
                .args(["run", "-c"])
                .arg(&path)
                .env("ELASTICSEARCH_HOST", u.host_str().unwrap())
                .env("ELASTICSEARCH_PORT", u.port().unwrap().to_string())
                .env(
                    "FLUENTD_TEMPLATE_FILE",
                    repo().join("elk/fluentd-template.json"),
                )
                .env("LOGSHIP_BUFFER_PATH", dir.path().join("buffer"))
                .envs(env.iter().copied()),
        );
        // The Forward input's line (the monitor source logs one too).
        let port = logship_child::wait_for(&rx, &lines, 20, "no 'listening' log line", |f| {
            (f["message"] == "listening" && f["source"] == "forward")
                .then(|| logship_child::listening_port(f))
        });
        Logship {
            child,
            port,
            lines,
            dir,
        }
    }

    pub async fn client(&self) -> ForwardClient {
        ForwardClient::connect(ClientConfig {
            addr: format!("127.0.0.1:{}", self.port),
            require_ack: true,
            timeout: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap()
    }

    /// SIGTERM, wait, and return the fields of the "elasticsearch output stopped" line.
    pub fn stop(mut self) -> Value {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "logship did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        logship_child::wait_stderr_closed(&self.lines, 10);
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["fields"]["message"] == "elasticsearch output stopped")
            .map(|v| v["fields"].clone())
            .unwrap_or_else(|| panic!("no stats line in:\n{}", lines.join("\n")))
    }

    pub fn dead_letter_path(&self) -> PathBuf {
        self.dir.path().join("dead-letter.jsonl")
    }
}

impl Drop for Logship {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `logship tail -f --json ARGS`: the documents it prints (one JSON line each) and
/// its stderr notices, collected as they come.
pub struct TailFollow {
    child: Child,
    pub printed: Arc<Mutex<Vec<Value>>>,
    pub notices: Arc<Mutex<Vec<String>>>,
}

impl TailFollow {
    /// Starts `logship tail -f -n 0 --json --interval 0.3 ARGS` (LOG_LEVEL=warn).
    pub fn start(args: &[&str]) -> TailFollow {
        use std::io::BufRead as _;
        let mut child = Command::new(BIN)
            .args(["tail", "-f", "-n", "0", "--json", "--interval", "0.3"])
            .args(args)
            .env("LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let printed = Arc::new(Mutex::new(Vec::<Value>::new()));
        let p = printed.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let doc = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                p.lock().unwrap_or_else(|e| e.into_inner()).push(doc);
            }
        });
        let notices = Arc::new(Mutex::new(Vec::<String>::new()));
        let n = notices.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                n.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        TailFollow {
            child,
            printed,
            notices,
        }
    }

    /// The documents printed so far.
    pub fn printed(&self) -> Vec<Value> {
        self.printed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The stderr lines so far, joined.
    pub fn notices(&self) -> String {
        self.notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Waits until `done(printed)` holds (panics after `secs`, with the notices).
    pub async fn wait_until(&self, secs: u64, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(&self.printed()) {
            assert!(
                Instant::now() < deadline,
                "tail: {what} not within {secs}s ({} printed); notices: {}",
                self.printed().len(),
                self.notices()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGINT, and its exit code.
    pub fn interrupt(mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap().code()
    }
}

impl Drop for TailFollow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A msgpack map of string pairs, in the given key order (as Docker's driver would send, in
/// any order).
pub fn mp_map(pairs: &[(&str, &str)]) -> Bytes {
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, pairs.len() as u32).unwrap();
    for (k, v) in pairs {
        rmp::encode::write_str(&mut out, k).unwrap();
        rmp::encode::write_str(&mut out, v).unwrap();
    }
    Bytes::from(out)
}

const LEVELS: [u8; 3] = [30, 40, 50];

/// A bunyan line of the api (request log) for `run`, number `i`.
pub fn bunyan_line(run: &str, i: usize, time: EventTime, status: Value) -> String {
    let t = String::from_utf8({
        let mut b = Vec::new();
        logship::output::elasticsearch::encoder::write_rfc3339_nanos(&mut b, time);
        b
    })
    .unwrap();
    serde_json::json!({
        "v": 0, "name": "api", "msg": format!("request completed {i}"),
        "level": LEVELS[i % 3], "hostname": "api-1", "pid": 7, "time": t,
        "target": "api::request_log", "line": 59, "file": "api/src/request_log.rs",
        "request_id": format!("{run}-{i}"), "method": "GET", "path": "/users",
        "status": status, "latency_ms": 1.25 + i as f64, "user_agent": "curl/8",
        "db_backend": "sqlite", "process_type": "web", "run": run,
    })
    .to_string()
}

/// The Docker record for a log line (keys in Docker's order or reversed).
pub fn docker_record(line: &str, reversed: bool) -> Bytes {
    let mut pairs = vec![
        (
            "container_id",
            "4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a",
        ),
        ("container_name", "/api"),
        ("source", "stdout"),
        ("log", line),
    ];
    if reversed {
        pairs.reverse();
    }
    mp_map(&pairs)
}

pub async fn json(req: reqwest::RequestBuilder) -> Value {
    let r = req.send().await.expect("request to OpenSearch");
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "HTTP {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// `_count` of documents with `run:RUN` in `fluentd-*` (after a refresh).
pub async fn count(es: &str, run: &str) -> u64 {
    let c = http();
    let _ = c.post(format!("{es}/fluentd-*/_refresh")).send().await;
    let r = match c
        .get(format!("{es}/fluentd-*/_count"))
        .query(&[("q", format!("run:{run}"))])
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return 0,
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["count"].as_u64().unwrap_or(0)
}

/// Waits until `count` reaches `n` (panics after `secs`), then checks it stays there.
pub async fn wait_count(es: &str, run: &str, n: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = count(es, run).await;
        if c == n {
            break;
        }
        assert!(c < n, "more documents than sent: {c} > {n}");
        assert!(
            Instant::now() < deadline,
            "only {c} of {n} documents after {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(es, run).await, n, "count changed after settling");
}
