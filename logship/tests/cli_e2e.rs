//! End to end through the real binary: `logship run -c` on an ephemeral port (the bound
//! address is read from its JSON "listening" log line on stderr), `logship cat`,
//! `logship exec`, SIGTERM, and `check-config`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_logship");

struct Server {
    child: Child,
    port: u16,
    /// The stderr lines up to and including the first "listening" line.
    startup_lines: Vec<serde_json::Value>,
    stderr_lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(conf: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logship.conf");
        std::fs::write(&path, conf).unwrap();
        let mut child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(&path)
            .env("LOG_LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut startup_lines = Vec::new();
        let port = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("no 'listening' log line");
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("stderr line is not JSON: {line}"));
            startup_lines.push(v.clone());
            if v["fields"]["message"] == "listening" {
                let addr: std::net::SocketAddr =
                    v["fields"]["address"].as_str().unwrap().parse().unwrap();
                break addr.port();
            }
        };
        Server {
            child,
            port,
            startup_lines,
            stderr_lines: rx,
            _dir: dir,
        }
    }

    /// Sends SIGTERM, waits for exit, returns (exit status success, stdout).
    fn stop(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "logship run did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        // Every stderr line is JSON.
        while let Ok(l) = self.stderr_lines.try_recv() {
            serde_json::from_str::<serde_json::Value>(&l)
                .unwrap_or_else(|_| panic!("stderr line is not JSON: {l}"));
        }
        (status.success(), out)
    }
}

fn cat(port: u16, tag: &str, input: &str, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN)
        .args(["cat", "--port", &port.to_string(), tag])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

/// Checks `2025-03-14 15:09:26.535897932 +0000 TAG: JSON` and returns (tag, record).
fn parse_line(l: &str) -> (String, serde_json::Value) {
    let b = l.as_bytes();
    assert!(l.len() > 37, "{l}");
    assert_eq!(b[4], b'-');
    assert_eq!(b[10], b' ');
    assert_eq!(b[19], b'.');
    assert!(b[20..29].iter().all(u8::is_ascii_digit), "{l}");
    assert_eq!(&l[29..36], " +0000 ", "{l}");
    let rest = &l[36..];
    let (tag, json) = rest.split_once(": ").unwrap();
    (tag.to_string(), serde_json::from_str(json).unwrap())
}

const CONF: &str = "<source>\n  @type forward\n  bind 127.0.0.1\n  port 0\n</source>\n<match **>\n  @type stdout\n</match>\n";

#[test]
fn run_cat_exec_and_sigterm() {
    let server = Server::start(CONF);
    let port = server.port;

    let out = cat(
        port,
        "test.cat",
        "{\"msg\":\"hello\",\"n\":1}\n[1,2]\nnot json\n{\"msg\":\"é\"}\n",
        &["--ack"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "one invalid line → exit 1; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3"));

    let ex = Command::new(BIN)
        .args([
            "exec",
            "--tag",
            "docker.demo",
            "--port",
            &port.to_string(),
            "--name",
            "demo",
            "--",
        ])
        .args(["sh", "-c", "echo a; echo b >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(ex.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&ex.stdout),
        "a\n",
        "stdout is echoed"
    );
    assert!(
        String::from_utf8_lossy(&ex.stderr).starts_with("b\n"),
        "stderr is echoed: {}",
        String::from_utf8_lossy(&ex.stderr)
    );

    std::thread::sleep(Duration::from_millis(300));
    let (ok, stdout) = server.stop();
    assert!(ok, "run exits 0 on SIGTERM");
    let lines: Vec<(String, serde_json::Value)> = stdout.lines().map(parse_line).collect();
    let cat_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|(t, _)| t == "test.cat")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(cat_lines.len(), 3, "{stdout}");
    assert_eq!(cat_lines[0], &serde_json::json!({"msg": "hello", "n": 1}));
    assert_eq!(cat_lines[1], &serde_json::json!({"message": [1, 2]}));
    assert_eq!(cat_lines[2], &serde_json::json!({"msg": "é"}));
    let mut ex_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|(t, _)| t == "docker.demo")
        .map(|(_, r)| r)
        .collect();
    ex_lines.sort_by_key(|r| r["source"].as_str().unwrap().to_string());
    assert_eq!(
        ex_lines,
        vec![
            &serde_json::json!({"container_name": "/demo", "source": "stderr", "log": "b"}),
            &serde_json::json!({"container_name": "/demo", "source": "stdout", "log": "a"}),
        ]
    );
}

#[test]
fn exec_buffers_until_the_server_comes_up() {
    // Pick a free port, start exec first (nothing listens yet), then the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ex = Command::new(BIN)
        .args([
            "exec",
            "--tag",
            "late",
            "--port",
            &port.to_string(),
            "--flush-timeout",
            "20",
            "--",
        ])
        .args(["sh", "-c", "echo early; sleep 1; echo later"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let conf = CONF.replace("port 0", &format!("port {port}"));
    let server = Server::start(&conf);
    let out = ex.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(300));
    let (ok, stdout) = server.stop();
    assert!(ok);
    let logs: Vec<String> = stdout
        .lines()
        .map(parse_line)
        .filter(|(t, _)| t == "late")
        .map(|(_, r)| r["log"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logs, vec!["early", "later"], "{stdout}");
}

#[test]
fn exec_splits_long_lines_and_concat_joins_them() {
    let conf = format!(
        "{}<filter **>\n  @type concat\n  key log\n  use_partial_metadata true\n  separator \"\"\n</filter>\n<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n",
        CONF.split("<match").next().unwrap()
    );
    let server = Server::start(&conf);
    let ex = Command::new(BIN)
        .args([
            "exec",
            "--tag",
            "long",
            "--port",
            &server.port.to_string(),
            "--",
        ])
        .args([
            "sh",
            "-c",
            "head -c 40000 /dev/zero | tr '\\0' x; echo; echo short",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ex.success());
    std::thread::sleep(Duration::from_millis(300));
    let (ok, stdout) = server.stop();
    assert!(ok);
    let recs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2, "{}", &stdout[..stdout.len().min(500)]);
    assert_eq!(recs[0]["log"].as_str().unwrap().len(), 40000);
    assert!(recs[0].get("partial_id").is_none());
    assert_eq!(recs[1]["log"], "short");
}

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

#[test]
fn check_config_good_and_broken() {
    let good = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(configs().join("docker_bunyan_pipeline.conf"))
        .output()
        .unwrap();
    assert_eq!(good.status.code(), Some(0));
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains("forward 127.0.0.1:24224 -> root"), "{out}");
    assert!(out.contains("filter docker.** -> concat"), "{out}");
    assert!(out.contains("match  docker.** -> stdout (json)"), "{out}");

    let demo = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fluentd/demo.conf"))
        .output()
        .unwrap();
    assert_eq!(
        demo.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );

    let es = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(configs().join("elasticsearch.conf"))
        .output()
        .unwrap();
    assert_eq!(es.status.code(), Some(0));
    // a file buffer is runnable: no warning
    let es_err = String::from_utf8_lossy(&es.stderr);
    assert!(!es_err.contains("warning"), "{es_err}");
    assert!(
        String::from_utf8_lossy(&es.stdout).contains("(file buffer "),
        "{}",
        String::from_utf8_lossy(&es.stdout)
    );

    // a parameter accepted without effect is named with its line (stdout, exit 0)
    let file = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(configs().join("file_output.conf"))
        .output()
        .unwrap();
    assert_eq!(file.status.code(), Some(0));
    let out = String::from_utf8_lossy(&file.stdout);
    assert!(
        out.contains("<buffer>: each batch is written through")
            && out.contains("file_output.conf:16 in <match app.**> (@type file)"),
        "{out}"
    );

    let bad = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(configs().join("broken/unknown_param.conf"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("broken/unknown_param.conf:4: unknown parameter 'prot' in <source> (@type forward); supported: "), "{err}");
    assert!(bad.stdout.is_empty());
}

/// A config with parameters that have no effect in logship: `check-config` names each once
/// with its reason and places, `run` logs each once at start (INFO) and still runs.
const NO_EFFECT_CONF: &str = "<source>\n  @type forward\n  port 0\n  bind 127.0.0.1\n  <transport tcp>\n    cert_path /x\n  </transport>\n  @log_level debug\n</source>\n\
<match **>\n  @type stdout\n  @log_level info\n  <buffer>\n    flush_interval 1s\n  </buffer>\n</match>\n";

#[test]
fn no_effect_parameters_are_named_by_check_config_and_once_at_run_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_effect.conf");
    std::fs::write(&path, NO_EFFECT_CONF).unwrap();
    let check = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
    let out = String::from_utf8_lossy(&check.stdout);
    let listed: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("parameters with no effect in logship"))
        .skip(1)
        .collect();
    let conf = path.display();
    assert_eq!(
        listed,
        [
            format!("  cert_path: only `<transport tls>` uses it ({conf}:6 in <transport tcp>)"),
            format!("  @log_level: logship has one log level for all plugins (`<system> log_level`, `LOG_LEVEL`, `RUST_LOG`) ({conf}:8 in <source> (@type forward); {conf}:12 in <match **> (@type stdout))"),
            format!("  <buffer>: each batch is written before it is acked; nothing is buffered ({conf}:13 in <match **> (@type stdout))"),
        ],
        "{out}"
    );

    let server = Server::start(NO_EFFECT_CONF);
    let logged: Vec<&str> = server
        .startup_lines
        .iter()
        .filter(|v| v["fields"]["message"] == "configuration parameter has no effect in logship")
        .map(|v| {
            assert_eq!(v["level"], "INFO", "{v}");
            v["fields"]["parameter"].as_str().unwrap()
        })
        .collect();
    assert_eq!(logged.len(), 3, "{:#?}", server.startup_lines);
    assert!(
        logged[0].starts_with("cert_path: only `<transport tls>` uses it ("),
        "{logged:?}"
    );
    assert!(logged[1].starts_with("@log_level: "), "{logged:?}");
    assert!(logged[2].starts_with("<buffer>: "), "{logged:?}");
    let (ok, _) = server.stop();
    assert!(ok);
}

#[test]
fn run_refuses_an_invalid_config() {
    let r = Command::new(BIN)
        .args(["run", "-c"])
        .arg(configs().join("broken/bad_size.conf"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("bad_size.conf:4"));
    assert!(r.stdout.is_empty());
}

#[test]
fn exec_of_a_missing_command_exits_127() {
    let r = Command::new(BIN)
        .args([
            "exec",
            "--tag",
            "t",
            "--port",
            "1",
            "--",
            "/nonexistent/command-xyz",
        ])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&r.stderr).contains("cannot run"));
}

#[test]
fn system_log_level_sets_the_default_level() {
    // The port is held by this test, so `run` fails right after start-up. With
    // `<system> log_level warn` the info lines are not printed; the error is.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.conf");
    let conf = CONF.replace("port 0", &format!("port {port}"));
    std::fs::write(
        &path,
        format!("<system>\n  log_level warn\n</system>\n{conf}"),
    )
    .unwrap();
    let run = |level: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["run", "-c"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .env_remove("LOG_LEVEL");
        if let Some(l) = level {
            c.env("LOG_LEVEL", l);
        }
        c.output().unwrap()
    };
    let r = run(None);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!err.contains("\"level\":\"INFO\""), "{err}");
    assert!(err.contains("\"level\":\"ERROR\""), "{err}");
    assert!(err.contains("cannot listen on 127.0.0.1"), "{err}");
    assert!(r.stdout.is_empty());
    // LOG_LEVEL overrides <system>: with `off` no JSON log line, only the plain error message.
    let r = run(Some("off"));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!err.contains("\"level\""), "{err}");
    assert!(err.contains("logship: cannot listen on 127.0.0.1"), "{err}");
    drop(held);
}

/// The reader of logship's stderr goes away (a log collector restarted, `| head`): logship
/// keeps serving, and SIGTERM still stops it. (Each log line written to the broken pipe used
/// to panic the task that logged it — the signal handler's "signal received" line included,
/// so shutdown never began.)
#[test]
fn sigterm_stops_run_after_its_stderr_reader_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logship.conf");
    std::fs::write(&path, CONF).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .env("LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let port = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no 'listening' line"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["fields"]["message"] == "listening" {
            let addr: std::net::SocketAddr =
                v["fields"]["address"].as_str().unwrap().parse().unwrap();
            break addr.port();
        }
    };
    drop(stderr); // the read end is closed: every later write to stderr fails (EPIPE)
    let out = cat(port, "after.close", "{\"n\":1}\n", &["--ack"]);
    assert!(out.status.success(), "still serving: {out:?}");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("logship run did not exit within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
