//! A `logship run` child process as the tests start it: stdout discarded, stderr (its JSON
//! log lines) collected by a thread into a shared list and passed on through a channel, so
//! that a test can wait for a given line (the `listening` line of an input, say) and still
//! print everything logship said when it fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
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
    let mut child = cmd
        .env("LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let lines: Lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            l2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
        l2.lock().unwrap().push(STDERR_CLOSED.to_string());
    });
    (child, lines, rx)
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
