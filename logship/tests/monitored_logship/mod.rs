//! A real `logship run` child process with its monitoring endpoint: the addresses of its
//! sources (from the `listening` log lines, by plugin id), `/metrics` scraped and parsed by an
//! independent parser (`prometheus-parse`), and its CPU time and memory from `/proc`.
//! A test binary that uses it declares `mod logship_child;` too.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logship_child;

pub const BIN: &str = env!("CARGO_BIN_EXE_logship");

/// The config the Forward input tests run: `<system>` with `system` lines (none when empty), a
/// forward source `in` on 127.0.0.1, port 0, with `source` lines, a prometheus source `prom`,
/// then `matches`.
pub fn forward_config(system: &str, source: &str, matches: &str) -> String {
    let system = if system.is_empty() {
        String::new()
    } else {
        format!("<system>\n{system}\n</system>\n")
    };
    format!(
        "{system}<source>\n  @type forward\n  @id in\n  bind 127.0.0.1\n  port 0\n{source}\n</source>\n\
         <source>\n  @type prometheus\n  @id prom\n  bind 127.0.0.1\n  port 0\n</source>\n{matches}\n"
    )
}

/// A running `logship run`; killed (SIGKILL) and reaped on drop.
pub struct Logship {
    pub child: Child,
    /// plugin_id → address of every source.
    pub addrs: HashMap<String, String>,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

impl Logship {
    /// Starts `logship run` with `conf` (written to a temporary directory, which the config
    /// can name as `{dir}`) and waits until it is running.
    pub fn start(conf: &str) -> Logship {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf.replace("{dir}", &dir.path().display().to_string());
        let path = dir.path().join("logship.conf");
        std::fs::write(&path, conf).unwrap();
        let (child, lines, rx) =
            logship_child::spawn(Command::new(BIN).args(["run", "-c"]).arg(&path));
        let mut addrs = HashMap::new();
        logship_child::wait_for(&rx, &lines, 30, "logship did not start", |f| {
            if f["message"] == "listening" {
                addrs.insert(
                    f["plugin_id"].as_str().unwrap().to_string(),
                    f["address"].as_str().unwrap().to_string(),
                );
            }
            (f["message"] == "logship running").then_some(())
        });
        Logship {
            child,
            addrs,
            lines,
            dir,
        }
    }

    pub fn addr(&self, plugin_id: &str) -> &str {
        self.addrs
            .get(plugin_id)
            .unwrap_or_else(|| panic!("no listening line for {plugin_id}: {:?}", self.addrs))
    }

    pub fn url(&self, plugin_id: &str, path: &str) -> String {
        format!("http://{}{path}", self.addr(plugin_id))
    }

    /// `/metrics` of the prometheus source `prom` (see [`forward_config`]).
    pub fn metrics_url(&self) -> String {
        self.url("prom", "/metrics")
    }

    /// `name{plugin_id="in"}` now (the forward source of [`forward_config`]).
    pub async fn input_metric(&self, name: &str) -> f64 {
        metric(&self.metrics_url(), name, &[("plugin_id", "in")]).await
    }

    /// Polls until `name{plugin_id="in"}` equals `want`, for at most `secs` seconds.
    pub async fn wait_input_metric(&self, name: &str, want: f64, secs: u64) {
        let labels = [("plugin_id", "in".to_string())];
        wait_value_for(
            &self.metrics_url(),
            name,
            &labels,
            want,
            Duration::from_secs(secs),
        )
        .await
    }

    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The `fields` of every log line whose message is `msg`.
    pub fn log_lines(&self, msg: &str) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == msg)
            .map(|v| v["fields"].clone())
            .collect()
    }

    /// True while the process has not exited.
    pub fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/PID/status` value in KiB (`VmRSS:`, `VmHWM:`).
    pub fn status_kib(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/PID/status"))
    }

    /// User + system CPU seconds so far (`/proc/PID/stat`, 100 ticks a second).
    pub fn cpu_seconds(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    /// Resets the peak RSS (`VmHWM`) to the current RSS (our own child process).
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").unwrap();
    }
}

impl Drop for Logship {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET `url`: (status, content type, body).
pub async fn get(url: &str) -> (u16, String, String) {
    let r = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// Scrapes `url` and parses the exposition with `prometheus-parse` (panics if it does not
/// parse); returns the body and the parsed scrape.
pub async fn scrape(url: &str) -> (String, prometheus_parse::Scrape) {
    let (status, ct, body) = get(url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    (body, parsed)
}

/// The value of `name{labels}` (exact label set match on the given pairs), if present.
pub fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: unexpected value {other:?}"),
        })
}

/// The value of `name{labels}` now (panics when it is not exposed).
pub async fn metric(url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (body, s) = scrape(url).await;
    value(&s, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} not exposed:\n{body}"))
}

/// Polls `url` until `name{labels}` equals `want` (up to 20 s), then asserts it.
pub async fn wait_value(url: &str, name: &str, labels: &[(&str, String)], want: f64) {
    wait_value_for(url, name, labels, want, Duration::from_secs(20)).await
}

/// [`wait_value`] with its own time limit.
pub async fn wait_value_for(
    url: &str,
    name: &str,
    labels: &[(&str, String)],
    want: f64,
    limit: Duration,
) {
    let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let deadline = Instant::now() + limit;
    loop {
        let (body, s) = scrape(url).await;
        let got = value(&s, name, &l);
        if got == Some(want) {
            return;
        }
        if Instant::now() > deadline {
            panic!("{name}{labels:?} = {got:?}, want {want}; exposition:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
