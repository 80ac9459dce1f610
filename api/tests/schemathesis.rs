//! The OpenAPI contract, checked by a client nobody here wrote: schemathesis
//! (installed from PyPI by `scripts/test.sh` into
//! `$CARGO_TARGET_DIR/schemathesis-venv`) runs against a real `api serve` on
//! SQLite with an admin's bearer token: every operation, every check
//! (`--checks all`), positive and negative data, and the stateful phase that
//! follows the document's links (create → get → patch → delete, import →
//! job). Any failure fails this test; a missing schemathesis fails it under
//! `REQUIRE_SERVICES=1` (else the test is skipped with a message).
//!
//! Bounded: `--max-examples` per operation and `--max-time` for the run, and
//! the process is killed if it outlives the deadline.
//!
//! Its own test binary, so the fuzzing load never overlaps the main suite.

#[path = "api/helpers.rs"]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use helpers::{log_in, BinaryApp};

/// The schemathesis executable: `$SCHEMATHESIS`, the test script's venv, or
/// `schemathesis` on PATH.
fn schemathesis() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let venv = target.join("schemathesis-venv/bin/schemathesis");
    if venv.exists() {
        return Some(venv);
    }
    let on_path = Command::new("schemathesis").arg("--version").output();
    on_path
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from("schemathesis"))
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failure() {
    let Some(st) = schemathesis() else {
        if std::env::var("REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("schemathesis is not installed but REQUIRE_SERVICES=1 (scripts/test.sh installs it)");
        }
        eprintln!("SKIPPED: schemathesis not installed (run scripts/test.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("contract.db").display());
    let env = [("DATABASE_URL", url.as_str()), ("LOG_LEVEL", "warn")];
    // Some users first (deleting the admin would turn the rest of the run
    // into 401s, so the admin must not have an id a fuzzer tries early) ...
    let mut seed = BinaryApp::spawn_process(&["seed", "--count", "50"], &env, dir.path());
    assert!(
        seed.wait_exit(Duration::from_secs(60)).success(),
        "seed: {}",
        seed.stderr_text()
    );
    let server_env = [
        ("DATABASE_URL", url.as_str()),
        ("PORT", "0"),
        ("HOST", "127.0.0.1"),
        // Low enough that the fuzzer's log-in attempts reach the 429.
        ("LOGIN_LIMIT_PER_ADDRESS", "15"),
    ];
    // ... and ids from 10^12 on, so the admin's id is not one a fuzzer tries.
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE sqlite_sequence SET seq = 1000000000000 WHERE name = 'users'")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let mut server = BinaryApp::spawn(&["serve"], &server_env, dir.path());
    let base = server.url("");
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/users"))
        .json(&serde_json::json!({"name": "Contract Admin", "email": "contract-admin@example.com", "password": "contract admin pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut promote = BinaryApp::spawn_process(
        &["users", "promote", "contract-admin@example.com"],
        &env,
        dir.path(),
    );
    assert!(
        promote.wait_exit(Duration::from_secs(30)).success(),
        "promote: {}",
        promote.stderr_text()
    );
    let token = log_in(
        &client,
        &base,
        "contract-admin@example.com",
        "contract admin pw",
    )
    .await;
    // `DELETE /sessions/current` revokes the token it is sent with: it gets
    // another user's (see schemathesis.toml).
    let (_, logout_token) = helpers::sign_up_and_log_in(
        &client,
        &base,
        "contract-logout@example.com",
        "contract logout pw",
    )
    .await;

    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let report = dir.path().join("report");
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&st);
    cmd.arg("--config-file")
        .arg(here.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--mode", "all"])
        .args(["--max-examples", "40"])
        .args(["--max-time", "150"])
        .args(["--workers", "2"])
        .args(["--seed", "20261203"])
        .args(["--request-timeout", "10"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("--report-dir")
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "api_hooks")
        .env("API_LOGOUT_TOKEN", &logout_token)
        .env("PYTHONPATH", &here)
        .env("NO_COLOR", "1")
        // Its cache and the hooks' bytecode stay out of the checkout.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("schemathesis did not finish within 300 s")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    eprintln!("schemathesis took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "schemathesis reported failures (exit {:?}); output above",
        out.status.code()
    );
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let records = server.records();
    // No panic or 500 ever happened.
    for r in &records {
        assert_ne!(r["status"], 500, "500 in the server log: {r}");
        assert_ne!(r["msg"], "panic", "panic in the server log: {r}");
    }
    // The run reached every operation's success path (with the admin's
    // token, following the links), not just its error answers.
    let answered = |method: &str, prefix: &str, status: u16| {
        records.iter().any(|r| {
            r["method"] == method
                && r["status"] == status
                && r["path"].as_str().is_some_and(|p| p.starts_with(prefix))
        })
    };
    for (method, prefix, status) in [
        ("POST", "/users", 201),
        ("GET", "/users/", 200),
        ("PATCH", "/users/", 200),
        ("DELETE", "/users/", 204),
        ("POST", "/users/import", 202),
        ("GET", "/jobs/", 200),
        ("POST", "/sessions", 429),
        ("DELETE", "/sessions/current", 204),
        ("GET", "/users", 422),
    ] {
        assert!(
            answered(method, prefix, status),
            "no {status} answer to {method} {prefix}…"
        );
    }
}
