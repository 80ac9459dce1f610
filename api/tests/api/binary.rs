//! Black-box tests of the real `api` binary: logs, start-up, panics, graceful
//! shutdown. All run on SQLite in a temporary directory.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{assert_problem, BinaryApp};

fn sqlite_env(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("bin.db").display())
}

fn parse_all(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_log_line_is_bunyan_json_with_request_fields() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_env(&dir);
    let mut app = BinaryApp::spawn(
        &["serve"],
        &[("DATABASE_URL", &url), ("PORT", "0")],
        dir.path(),
    );
    let client = reqwest::Client::new();
    let r = client
        .get(app.url("/healthz"))
        .header("x-request-id", "log-test-1")
        .header("user-agent", "log-test-agent")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(app.url("/users"))
        .json(&serde_json::json!({"name": "L", "email": "l@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client.get(app.url("/users/424242")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.signal("TERM");
    assert!(app.wait_exit(Duration::from_secs(10)).success());

    let records = parse_all(&app.stdout_lines());
    assert!(!records.is_empty());
    for r in &records {
        for key in ["v", "name", "msg", "level", "time", "hostname", "pid"] {
            assert!(!r[key].is_null(), "missing {key} in {r}");
        }
        assert_eq!(r["name"], "api");
        assert_eq!(r["process_type"], "web", "process_type in {r}");
    }
    let completed: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["msg"]
                .as_str()
                .unwrap_or("")
                .ends_with("request completed")
        })
        .collect();
    assert_eq!(completed.len(), 3, "one completion event per request");
    for r in &completed {
        for key in [
            "request_id",
            "method",
            "path",
            "status",
            "latency_ms",
            "user_agent",
            "db_backend",
        ] {
            assert!(!r[key].is_null(), "missing {key} in {r}");
        }
        assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(r["db_backend"], "sqlite");
    }
    // One line per request: the span logs no START/END lines of its own.
    let lines_of_first = records
        .iter()
        .filter(|r| r["request_id"] == "log-test-1")
        .count();
    assert_eq!(lines_of_first, 1, "log lines of one request: {records:?}");
    let first = completed[0];
    assert_eq!(first["request_id"], "log-test-1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/healthz");
    assert_eq!(first["status"], 200);
    assert_eq!(first["user_agent"], "log-test-agent");
    assert_eq!(completed[2]["status"], 404);
    let msgs: Vec<&str> = records.iter().filter_map(|r| r["msg"].as_str()).collect();
    assert!(msgs.contains(&"listening"));
    assert!(msgs.contains(&"shutdown complete"));
    assert!(msgs.iter().any(|m| m.contains("shutdown signal received")));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_database_env_warns_and_uses_sqlite_default() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut app = BinaryApp::spawn(&[], &[("PORT", "0")], dir.path());
    let client = reqwest::Client::new();
    let ready = loop {
        let r = client.get(app.url("/readyz")).send().await;
        if let Ok(r) = r {
            if r.status() == 200 {
                break started.elapsed();
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never ready");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    eprintln!("time from spawn to first 200 /readyz (debug build): {ready:?}");
    assert!(dir.path().join("api.db").exists(), "api.db created in cwd");
    let records = parse_all(&app.stdout_lines());
    let warn = records
        .iter()
        .find(|r| r["level"] == 40 && r["msg"].as_str().unwrap().contains("SQLite default"))
        .expect("a WARN about the SQLite default");
    assert_eq!(warn["database_url"], "sqlite:./api.db");
    app.signal("INT");
    assert!(
        app.wait_exit(Duration::from_secs(10)).success(),
        "SIGINT exits 0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_port_stops_startup_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = BinaryApp::spawn(&["serve"], &[("PORT", "not-a-port")], dir.path());
    let status = app.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(
        app.stderr_text().contains("PORT"),
        "stderr: {}",
        app.stderr_text()
    );
    let records = parse_all(&app.stdout_lines());
    assert!(
        records
            .iter()
            .any(|r| r["level"] == 50 && r["error"].as_str().unwrap_or("").contains("PORT")),
        "an ERROR log line naming PORT"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_database_starts_redacted_and_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, connections are refused.
    let mut app = BinaryApp::spawn(
        &["serve"],
        &[
            ("DATABASE_URL", "mysql://app:hunter2@127.0.0.1:9/app"),
            ("DATABASE_CONNECT_TIMEOUT", "1s"),
            ("PORT", "0"),
        ],
        dir.path(),
    );
    assert!(app.port.is_some(), "starts while the database is down");
    let client = reqwest::Client::new();
    let t = Instant::now();
    let r = client.get(app.url("/readyz")).send().await.unwrap();
    assert_problem(r, 503).await;
    let r = client.get(app.url("/users/1")).send().await.unwrap();
    assert_problem(r, 503).await;
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "fails fast: {:?}",
        t.elapsed()
    );
    let r = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "liveness does not depend on the database");
    app.signal("TERM");
    assert!(app.wait_exit(Duration::from_secs(10)).success());
    let out = app.stdout_lines().join("\n");
    assert!(!out.contains("hunter2"), "password leaked into logs");
    assert!(out.contains("mysql://app:***@127.0.0.1:9/app"));
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_in_handler_is_500_problem_and_process_survives() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_env(&dir);
    let mut app = BinaryApp::spawn(
        &["serve"],
        &[
            ("DATABASE_URL", &url),
            ("PORT", "0"),
            ("API_TEST_HOOKS", "1"),
        ],
        dir.path(),
    );
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client.get(app.url("/__test/panic")).send().await.unwrap();
        let body = assert_problem(r, 500).await;
        assert!(
            !body["detail"].as_str().unwrap().contains("test hook panic"),
            "no internals leak"
        );
    }
    let r = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(app.child.try_wait().unwrap().is_none(), "still running");
    app.signal("TERM");
    assert!(app.wait_exit(Duration::from_secs(10)).success());
    let records = parse_all(&app.stdout_lines());
    assert!(records
        .iter()
        .any(|r| r["level"] == 50 && r["msg"].as_str().unwrap().contains("handler panicked")));
    let hook = records
        .iter()
        .find(|r| r["msg"].as_str().unwrap().ends_with("panic"))
        .expect("panic hook record");
    assert!(hook["location"].as_str().unwrap().contains("test_hooks.rs"));
    assert_eq!(
        hook["path"], "/__test/panic",
        "logged inside the request span"
    );
    assert!(
        !app.stderr_text().contains("panicked at"),
        "no free-text panic on stderr"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_env(&dir);
    let mut app = BinaryApp::spawn(
        &["serve"],
        &[
            ("DATABASE_URL", &url),
            ("PORT", "0"),
            ("API_TEST_HOOKS", "1"),
            ("SHUTDOWN_TIMEOUT", "20s"),
        ],
        dir.path(),
    );
    let base = app.url("");
    let port = app.port.unwrap();
    let slow_ms = 1500u64;
    // A steady stream: one new connection + slow request every 25 ms.
    let start = Instant::now();
    let mut handles = Vec::new();
    let stream_for = Duration::from_millis(1500);
    let signal_at = Duration::from_millis(800);
    let mut signalled: Option<Instant> = None;
    while start.elapsed() < stream_for {
        if signalled.is_none() && start.elapsed() >= signal_at {
            app.signal("TERM");
            signalled = Some(Instant::now());
        }
        let sent_at = Instant::now();
        let url = format!("{base}/__test/slow?ms={slow_ms}");
        handles.push(tokio::spawn(async move {
            // A fresh client per request = a fresh connection per request.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let res = client.get(&url).send().await;
            let ok = match res {
                Ok(r) => Some((r.status().as_u16(), r.text().await.ok())),
                Err(_) => None,
            };
            (sent_at, ok)
        }));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let signalled = signalled.unwrap();

    // While the accepted slow requests are still in flight, new connections are refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener should be closed after SIGTERM"
    );

    let mut before = 0;
    let mut after_refused = 0;
    for h in handles {
        let (sent_at, outcome) = h.await.unwrap();
        if sent_at + Duration::from_millis(300) < signalled {
            // Certainly accepted before the signal: must complete successfully.
            let (status, body) = outcome.expect("in-flight request was dropped");
            assert_eq!(status, 200);
            assert_eq!(body.as_deref(), Some("done"));
            before += 1;
        } else if sent_at > signalled + Duration::from_millis(300) {
            assert!(outcome.is_none(), "request after shutdown was served");
            after_refused += 1;
        } else if let Some((status, _)) = outcome {
            // Racing the signal: either refused or fully served, never an error status.
            assert_eq!(status, 200);
        }
    }
    assert!(before >= 12, "only {before} requests before the signal");
    assert!(
        after_refused >= 5,
        "only {after_refused} requests after the signal"
    );
    let status = app.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    // The drain waited for the in-flight requests (about slow_ms), not the full timeout.
    let drained = signalled.elapsed();
    assert!(drained < Duration::from_secs(10), "drain took {drained:?}");
    let records = parse_all(&app.stdout_lines());
    assert!(records.iter().any(|r| r["msg"] == "shutdown complete"));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_timeout_bounds_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_env(&dir);
    let mut app = BinaryApp::spawn(
        &["serve"],
        &[
            ("DATABASE_URL", &url),
            ("PORT", "0"),
            ("API_TEST_HOOKS", "1"),
            ("SHUTDOWN_TIMEOUT", "500ms"),
        ],
        dir.path(),
    );
    let url = app.url("/__test/slow?ms=30000");
    let req = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    app.signal("TERM");
    let status = app.wait_exit(Duration::from_secs(10));
    assert!(status.success());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(req.await.unwrap().is_err(), "abandoned request is cut off");
    let out = app.stdout_lines().join("\n");
    assert!(out.contains("shutdown timeout elapsed"));
}

/// `git ARGS` in this package's checkout; `None` without git or outside a checkout.
fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `api --version` names the commit it was built from: in a checkout (a CI clone included)
/// the checkout's HEAD, abbreviated; built without `.git` (the image), the `GIT_SHA` it was
/// given; with neither, `unknown`.
#[test]
fn version_includes_git_sha() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let sha = text
        .trim_end()
        .strip_prefix(&format!("api {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `api VERSION (SHA)`: {text:?}"));
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => {
            assert!(
                sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{sha:?} is not an abbreviated commit id"
            );
            // The binary is rebuilt when HEAD moves (build.rs), worktrees included.
            assert!(
                head.starts_with(sha),
                "built from {sha}, but the checkout is at {head}"
            );
        }
        None => {
            let given = std::env::var("GIT_SHA")
                .ok()
                .filter(|s| !s.trim().is_empty());
            assert_eq!(sha, given.as_deref().unwrap_or("unknown"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_and_seed_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_env(&dir);
    let envs = [("DATABASE_URL", url.as_str())];
    let mut m = BinaryApp::spawn(&["migrate"], &envs, dir.path());
    assert!(
        m.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        m.stderr_text()
    );
    let mut s = BinaryApp::spawn(
        &["seed", "--count", "1234", "--batch-size", "500"],
        &envs,
        dir.path(),
    );
    assert!(
        s.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        s.stderr_text()
    );
    assert!(
        s.stderr_text().contains("seeded 1234/1234"),
        "{}",
        s.stderr_text()
    );
    // Seeding again does not collide with the first run's e-mails.
    let mut s = BinaryApp::spawn(&["seed", "--count", "10"], &envs, dir.path());
    assert!(
        s.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        s.stderr_text()
    );
    let settings = api::config::DatabaseSettings::from_url(&url).unwrap();
    let db = api::db::Db::connect_lazy(&settings).unwrap();
    assert_eq!(db.count_users().await.unwrap(), 1244);
    for (p, kind) in [(&m, "migrate"), (&s, "seed")] {
        for r in parse_all(&p.stdout_lines()) {
            assert_eq!(r["process_type"], kind, "{r}");
        }
    }
}

fn healthcheck(port: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .arg("healthcheck")
        .env_clear()
        .env("PORT", port)
        .output()
        .expect("run api healthcheck")
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_subcommand_exits_0_on_200_else_1() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_env(&dir);
    let mut app = BinaryApp::spawn(
        &["serve"],
        &[("DATABASE_URL", &url), ("PORT", "0")],
        dir.path(),
    );
    let port = app.port.expect("server port").to_string();
    let out = tokio::task::spawn_blocking(move || healthcheck(&port))
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthy"));

    // Nothing listens on the port once the server is gone.
    let port = app.port.unwrap().to_string();
    app.signal("TERM");
    assert!(app.wait_exit(Duration::from_secs(10)).success());
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || healthcheck(&port))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));
    assert!(t.elapsed() < Duration::from_secs(5));

    // A listener that never answers: bounded by the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || healthcheck(&port))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(silent);
}

/// SIGTERM the moment the `listening` line appears (before the server task
/// has necessarily run): the handlers are installed before that line, so the
/// process still drains and exits 0 instead of dying of the signal.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_listening_still_drains() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("early.db").display());
        let mut app = BinaryApp::spawn(
            &["serve"],
            &[("DATABASE_URL", &url), ("PORT", "0")],
            dir.path(),
        );
        assert!(
            app.port.is_some(),
            "no listening line: {}",
            app.stderr_text()
        );
        app.signal("TERM");
        let status = app.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "exit {status:?}");
        let msgs: Vec<String> = app
            .records()
            .iter()
            .filter_map(|r| r["msg"].as_str().map(str::to_owned))
            .collect();
        assert!(msgs.iter().any(|m| m == "shutdown complete"), "{msgs:?}");
    }
}
