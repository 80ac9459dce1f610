//! Shared by the forward-output tests: `logship run` receivers (aggregators) as child
//! processes on fixed loopback ports (so that a killed one can be restarted on the same
//! port), an in-process forward output built from config text, and event helpers.
//! A test binary that uses it declares `mod logship_child;` (the child-process helper) too.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logship::config::{Config, Directive};
use logship::event::{Event, EventBatch, EventTime};
use logship::forward::encode_record_from_json;
use logship::output::forward::{ForwardOutput, ForwardOutputConfig};
use serde_json::Value;

use crate::logship_child;

pub const BIN: &str = env!("CARGO_BIN_EXE_logship");

/// A port that was free a moment ago (TCP and UDP).
pub fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A `logship run` child process; killed (SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub conf: PathBuf,
    /// Disconnected once the reader has the child's last log line.
    log_rx: std::sync::mpsc::Receiver<String>,
}

impl Proc {
    /// Starts `logship run -c conf` with `env` and waits for its `listening` line.
    pub fn start(conf: &Path, env: &[(&str, String)]) -> (Proc, u16) {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "-c"]).arg(conf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, lines, rx) = logship_child::spawn(&mut cmd);
        let what = format!("{}: no 'listening' line", conf.display());
        let port = logship_child::wait_for(&rx, &lines, 30, &what, |f| {
            (f["message"] == "listening").then(|| logship_child::listening_port(f))
        });
        let p = Proc {
            child,
            lines,
            conf: conf.to_path_buf(),
            log_rx: rx,
        };
        (p, port)
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig}");
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; waits (bounded) for the exit and returns the log lines.
    pub fn stop(&mut self) -> Vec<String> {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "logship did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        crate::logship_child::wait_stderr_closed(&self.lines, 10);
        self.lines.lock().unwrap().clone()
    }

    /// The fields of the first JSON log line whose message is `msg`.
    pub fn log_fields(&self, msg: &str) -> Option<Value> {
        logship_child::log_fields(&self.lines, msg)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Only a child not yet reaped (its PID is still ours). SIGKILL works on a stopped
        // process too.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// A receiver (aggregator): `logship run` with a forward input on `port` writing every event
/// as a JSON line to `dir/out`, with `extra` inside the `<source>`.
pub struct Receiver {
    pub proc: Option<Proc>,
    pub port: u16,
    pub dir: PathBuf,
    source_extra: String,
}

impl Receiver {
    pub fn start(dir: &Path, port: u16, source_extra: &str) -> Receiver {
        std::fs::create_dir_all(dir).unwrap();
        let mut r = Receiver {
            proc: None,
            port,
            dir: dir.to_path_buf(),
            source_extra: source_extra.to_string(),
        };
        r.restart();
        r
    }

    /// (Re)starts the process on the same port and output file.
    pub fn restart(&mut self) {
        let conf = self.dir.join("receiver.conf");
        std::fs::write(
            &conf,
            format!(
                "<source>\n  @type forward\n  bind 127.0.0.1\n  port {}\n{}\n</source>\n\n<match **>\n  @type file\n  path {}\n  append true\n  add_path_suffix false\n  <format>\n    @type json\n  </format>\n</match>\n",
                self.port,
                self.source_extra,
                self.dir.join("out").display()
            ),
        )
        .unwrap();
        let (p, port) = Proc::start(&conf, &[]);
        assert_eq!(port, self.port);
        self.proc = Some(p);
    }

    pub fn proc(&self) -> &Proc {
        self.proc.as_ref().unwrap()
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    /// The `id` of every line written so far (with repetitions).
    pub fn ids(&self) -> Vec<u64> {
        let Ok(text) = std::fs::read_to_string(self.dir.join("out")) else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("bad line {l:?} in the receiver's output: {e}"));
                v["id"].as_u64().expect("id")
            })
            .collect()
    }
}

/// Counts of each id over several receivers.
pub fn tally(rs: &[&Receiver]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for r in rs {
        for id in r.ids() {
            *m.entry(id).or_insert(0) += 1;
        }
    }
    m
}

/// A batch of events `{"id": from..from+n, "msg": ...}` with tag `tag`.
pub fn batch(tag: &str, from: u64, n: u64) -> EventBatch {
    EventBatch::new(
        tag,
        (from..from + n)
            .map(|i| {
                Event::new(
                    EventTime::new(1_700_000_000 + i as i64, (i % 1000) as u32),
                    encode_record_from_json(
                        &serde_json::json!({"id": i, "msg": format!("event number {i}")}),
                    ),
                )
            })
            .collect(),
    )
}

/// The forward output of `<match **> @type forward BODY </match>` (needs a runtime).
pub fn edge(body: &str) -> ForwardOutput {
    let text = format!("<match **>\n  @type forward\n{body}\n</match>\n");
    let cfg = Config::from_str_at(&text, Path::new("edge.conf"))
        .unwrap_or_else(|e| panic!("edge config: {e:?}\n{text}"));
    let Some(Directive::Match(m)) = cfg.root.directives.first() else {
        panic!("no match")
    };
    let f = m.config::<ForwardOutputConfig>().expect("a forward output");
    ForwardOutput::new(f, Some("edge")).unwrap()
}

/// `<server>` section text.
pub fn server(port: u16, extra: &str) -> String {
    format!("  <server>\n    host 127.0.0.1\n    port {port}\n{extra}\n  </server>\n")
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `secs`.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {secs}s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn get(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(std::sync::atomic::Ordering::SeqCst)
}
