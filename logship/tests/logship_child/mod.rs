//! A `logship run` child process as the tests start it: stdout discarded (or kept, with
//! [`spawn_captured`]), stderr (its JSON log lines) collected by a thread into a shared list
//! and passed on through a channel, so that a test can wait for a given line (the `listening`
//! line of an input, say) and still print everything logship said when it fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The log lines of a child, in order, shared with the thread that reads them; the last one
/// is [`STDERR_CLOSED`] once the child's stderr reached its end.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// Appended to [`Lines`] when the child's stderr is closed (not JSON: log-line parsers skip it).
pub const STDERR_CLOSED: &str = "(stderr closed)";

/// After the child exited: waits (at most `secs`) until every line it wrote is in `lines`.
pub fn wait_stderr_closed(lines: &Lines, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while lines.lock().unwrap().last().map(String::as_str) != Some(STDERR_CLOSED) {
        assert!(Instant::now() < deadline, "stderr of the child not closed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Spawns `cmd` (a `logship run ...` command) at log level info, stdout discarded; returns
/// the child, its stderr lines so far, and a channel that receives each line as it comes.
pub fn spawn(cmd: &mut Command) -> (Child, Lines, mpsc::Receiver<String>) {
    let mut child = start(cmd, Stdio::null());
    let (lines, rx, _) = collect_lines(child.stderr.take().unwrap());
    (child, lines, rx)
}

/// Starts `cmd` at log level info with stderr piped and stdout to `stdout`.
fn start(cmd: &mut Command, stdout: Stdio) -> Child {
    cmd.env("LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The fields of the first JSON log line in `lines` whose message is `msg`.
pub fn log_fields(lines: &Lines, msg: &str) -> Option<Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == msg)
        .map(|v| v["fields"].clone())
}

/// A thread that collects the lines of `from` (a child's pipe) until EOF; each line is also
/// sent on the returned channel. Joining the thread waits for the last line.
fn collect_lines(
    from: impl Read + Send + 'static,
) -> (Lines, mpsc::Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let lines: Lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            l2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
        l2.lock().unwrap().push(STDERR_CLOSED.to_string());
    });
    (lines, rx, reader)
}

/// A `logship run` child whose stdout (what a `stdout` output writes) is kept as well.
pub struct Captured {
    pub child: Child,
    /// Log lines (stderr), and each as it comes.
    pub log: Lines,
    pub log_rx: mpsc::Receiver<String>,
    pub stdout: Lines,
    readers: Vec<JoinHandle<()>>,
}

/// Spawns `cmd` like [`spawn`], keeping its stdout lines too.
pub fn spawn_captured(cmd: &mut Command) -> Captured {
    let mut child = start(cmd, Stdio::piped());
    let (log, log_rx, log_reader) = collect_lines(child.stderr.take().unwrap());
    let (stdout, _, out_reader) = collect_lines(child.stdout.take().unwrap());
    Captured {
        child,
        log,
        log_rx,
        stdout,
        readers: vec![log_reader, out_reader],
    }
}

impl Captured {
    /// SIGTERM, then waits (at most `secs`) for the exit and for the last line of both pipes.
    pub fn stop(&mut self, secs: u64) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "logship did not exit within {secs}s of SIGTERM; log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close with the process: the readers end once they have every line.
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        status
    }

    /// The fields of the first log line whose message is `msg`.
    pub fn log_fields(&self, msg: &str) -> Option<Value> {
        log_fields(&self.log, msg)
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads lines from `rx` until `found` returns `Some` for the `fields` of one; panics with
/// `what` and every line logged so far if none does within `secs`.
pub fn wait_for<T>(
    rx: &mpsc::Receiver<String>,
    lines: &Lines,
    secs: u64,
    what: &str,
    mut found: impl FnMut(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| {
                panic!(
                    "{what} ({e}); stderr:\n{}",
                    lines.lock().unwrap().join("\n")
                )
            });
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(t) = found(&v["fields"]) {
            return t;
        }
    }
}

/// The port of a `listening` line's `address`.
pub fn listening_port(fields: &Value) -> u16 {
    let addr: std::net::SocketAddr = fields["address"].as_str().unwrap().parse().unwrap();
    addr.port()
}
