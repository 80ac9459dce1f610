//! Real client libraries end to end: PyPI `fluent-logger` 0.11.1 and Go
//! `fluent-logger-golang` v1.9.0 (configured as Docker's fluentd log driver configures it)
//! each send 10,000 events to a real server; every event must arrive exactly once.
//!
//! The test installs what it needs: a Python venv under `CARGO_TARGET_TMPDIR` (pip), and the Go
//! module through the Go module proxy. If python3/go or the registries are unavailable the
//! test prints why and passes, unless `REQUIRE_SERVICES=1`, when it fails.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use logship::forward::ForwardServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const N: usize = 10_000;

fn required() -> bool {
    std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn skip(why: &str) {
    assert!(!required(), "REQUIRE_SERVICES=1 but {why}");
    eprintln!("SKIPPED: {why}");
}

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

fn run_ok(cmd: &mut std::process::Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The seq values of the events with `tag`, checked to be exactly 0..n once each.
fn assert_exactly_once(server: &TestServer, tag: &str, n: usize) {
    let flat = flatten(&server.sink.batches.lock().unwrap());
    let mut seen = HashSet::new();
    for (t, _, _, rec, _) in flat.iter().filter(|e| e.0 == tag) {
        let Canon::Map(m) = rec else {
            panic!("record is not a map")
        };
        let seq = m
            .iter()
            .find(|(k, _)| *k == Canon::Str("seq".into()))
            .map(|(_, v)| match v {
                Canon::Int(i) => *i as usize,
                Canon::Str(s) => s.parse().unwrap(),
                o => panic!("seq is {o:?}"),
            })
            .unwrap_or_else(|| panic!("{t}: no seq"));
        assert!(seen.insert(seq), "{tag}: seq {seq} arrived twice");
    }
    assert_eq!(seen.len(), n, "{tag}: events arrived");
    assert!(seen.iter().all(|&s| s < n));
}

fn python_env() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("forward-pyenv");
    let py = venv.join("bin/python");
    let ok = |py: &Path| {
        std::process::Command::new(py)
            .args(["-c", "import fluent.sender, fluent.asyncsender"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&py) {
        run_ok(
            std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv),
        )?;
        run_ok(std::process::Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "fluent-logger==0.11.1",
        ]))?;
        if !ok(&py) {
            return Err("fluent-logger did not import after pip install".into());
        }
    }
    Ok(py)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_fluent_logger_10k_events_exactly_once() {
    let py = match tokio::task::spawn_blocking(python_env).await.unwrap() {
        Ok(p) => p,
        Err(e) => return skip(&format!("python fluent-logger unavailable: {e}")),
    };
    let server = TestServer::start(ForwardServerConfig::default()).await;
    for mode in ["sync", "nanosecond", "async"] {
        let out = tokio::process::Command::new(&py)
            .arg(peers_dir().join("py-fluent/send.py"))
            .args([
                "127.0.0.1",
                &server.addr.port().to_string(),
                &N.to_string(),
                mode,
            ])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("python finishes")
            .unwrap();
        assert!(
            out.status.success(),
            "python {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tag = format!("py.{mode}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while flatten(&server.sink.batches.lock().unwrap())
            .iter()
            .filter(|e| e.0 == tag)
            .count()
            < N
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_exactly_once(&server, &tag, N);
    }
    assert_eq!(counter(&server.metrics.frames_malformed), 0);
    assert_eq!(counter(&server.metrics.events_received), 3 * N as u64);
    server.stop().await;
}

fn go_binary() -> Result<PathBuf, String> {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-fluent-peer");
    run_ok(
        std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(peers_dir().join("go-fluent"))
            .env("GOFLAGS", "-mod=mod"),
    )?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_fluent_logger_docker_shapes_10k_events_exactly_once() {
    let bin = match tokio::task::spawn_blocking(go_binary).await.unwrap() {
        Ok(b) => b,
        Err(e) => {
            return skip(&format!(
                "go fluent-logger-golang peer could not be built: {e}"
            ))
        }
    };
    let server = TestServer::start(ForwardServerConfig::default()).await;
    for mode in ["sync", "async", "subsecond", "ack", "async_ack_subsecond"] {
        let tag = format!("docker.{mode}");
        let mut child = tokio::process::Command::new(&bin)
            .args([
                "-addr",
                &server.addr.to_string(),
                "-mode",
                mode,
                "-n",
                &N.to_string(),
                "-tag",
                &tag,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("go peer posts in time")
            .unwrap();
        assert_eq!(line.as_deref(), Some(&*format!("sent {N}")), "go {mode}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while flatten(&server.sink.batches.lock().unwrap())
            .iter()
            .filter(|e| e.0 == tag)
            .count()
            < N
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // let it close
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"\n").await.unwrap();
        drop(stdin);
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("go exits")
            .unwrap();
        assert!(status.success(), "go {mode} exit");
        assert_exactly_once(&server, &tag, N);
    }
    assert_eq!(counter(&server.metrics.frames_malformed), 0);
    assert_eq!(counter(&server.metrics.acks_sent), 2 * N as u64);
    server.stop().await;
}

fn node_env() -> Result<PathBuf, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("forward-node");
    if !dir
        .join("node_modules/@fluent-org/logger/package.json")
        .is_file()
    {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        run_ok(
            std::process::Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg("@fluent-org/logger@1.0.10"),
        )?;
    }
    Ok(dir.join("node_modules"))
}

/// The Node client implements the handshake: shared key and user auth against our server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_fluent_org_logger_handshake_and_ack() {
    let node_path = match tokio::task::spawn_blocking(node_env).await.unwrap() {
        Ok(p) => p,
        Err(e) => return skip(&format!("node @fluent-org/logger unavailable: {e}")),
    };
    use logship::forward::{SecurityConfig, UserCredential};
    let server = TestServer::start(ForwardServerConfig {
        security: Some(SecurityConfig {
            shared_key: "node-shared".into(),
            self_hostname: "logship-test".into(),
            users: vec![UserCredential {
                username: "bob".into(),
                password: "hunter2".into(),
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let n = 2000;
    for mode in [
        "Message",
        "Forward",
        "PackedForward",
        "CompressedPackedForward",
    ] {
        let out = tokio::process::Command::new("node")
            .arg(peers_dir().join("node-fluent/send.js"))
            .args([
                "127.0.0.1",
                &server.addr.port().to_string(),
                &n.to_string(),
                mode,
                "node-shared",
                "bob",
                "hunter2",
            ])
            .env("NODE_PATH", &node_path)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("node finishes")
            .unwrap();
        assert!(
            out.status.success(),
            "node {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // node exits 0 when its event loop drains with promises still pending: require the marker
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("sent {n}"),
            "node {mode} did not finish"
        );
        // every emit resolved only after its ack, so all events are already in the sink
        eprintln!(
            "node {mode}: {} events, acks {}, stdout {}",
            server.sink.event_count(),
            counter(&server.metrics.acks_sent),
            String::from_utf8_lossy(&out.stdout)
        );
        assert_exactly_once(&server, &format!("node.{mode}"), n);
    }
    assert_eq!(counter(&server.metrics.handshake_failures), 0);
    assert_eq!(counter(&server.metrics.frames_malformed), 0);
    assert!(counter(&server.metrics.acks_sent) > 0);
    server.stop().await;
}
