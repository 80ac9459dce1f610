//! Shared test helpers: spawning the application in-process against a fresh
//! database per test, and spawning the real binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use api::config::{DatabaseSettings, Settings};
use api::db::Db;
use api::startup::Application;
use sqlx::Connection;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    MySql,
    Postgres,
}

/// An application running in this test process.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db: Db,
    pub backend: TestBackend,
    /// URL of the app's (migrated) database, for child processes.
    pub db_url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// POST /users with a JSON body.
    pub async fn create(&self, name: &str, email: &str) -> reqwest::Response {
        self.client
            .post(self.url("/users"))
            .json(&serde_json::json!({"name": name, "email": email}))
            .send()
            .await
            .expect("request failed")
    }
}

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        let filter = std::env::var("TEST_LOG").unwrap_or_default();
        if filter.is_empty() {
            let s = api::telemetry::get_subscriber("test", "off", std::io::sink);
            let _ = api::telemetry::init_subscriber(s);
        } else {
            let s = api::telemetry::get_subscriber("test", &filter, std::io::stdout);
            let _ = api::telemetry::init_subscriber(s);
        }
    });
}

/// Look up a service URL; `None` means "skip" (and is only allowed when
/// `REQUIRE_SERVICES` is not `1`).
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None => {
            if std::env::var("REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{var} is not set but REQUIRE_SERVICES=1");
            }
            eprintln!("SKIPPED: {var} not set (run under scripts/test-services.sh)");
            None
        }
    }
}

/// Replace the database (path) part of a server URL.
pub fn with_database(url: &str, db: &str) -> String {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let (base, rest) = url.split_at(start);
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{base}{authority}/{db}{query}")
}

fn unique_db_name() -> String {
    format!("api_test_{}", uuid::Uuid::new_v4().simple())
}

/// Create a fresh database and return settings pointing at it, or `None`
/// when the service is not available (test skipped).
pub async fn fresh_database(
    backend: TestBackend,
) -> Option<(DatabaseSettings, Option<tempfile::TempDir>)> {
    let (url, dir) = match backend {
        TestBackend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite:{}", dir.path().join("test.db").display());
            (url, Some(dir))
        }
        TestBackend::MySql => {
            let admin = service_url("TEST_MYSQL_URL")?;
            let name = unique_db_name();
            let mut c = sqlx::MySqlConnection::connect(&admin)
                .await
                .expect("connect to TEST_MYSQL_URL");
            sqlx::query(&format!("CREATE DATABASE `{name}`"))
                .execute(&mut c)
                .await
                .expect("create database");
            let _ = c.close().await;
            (with_database(&admin, &name), None)
        }
        TestBackend::Postgres => {
            let admin = service_url("TEST_POSTGRES_URL")?;
            let name = unique_db_name();
            let mut c = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to TEST_POSTGRES_URL");
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut c)
                .await
                .expect("create database");
            let _ = c.close().await;
            (with_database(&admin, &name), None)
        }
    };
    let mut s = DatabaseSettings::from_url(&url).expect("database settings");
    s.max_connections = 5;
    s.auto_migrate = true;
    s.connect_timeout = Duration::from_secs(2);
    Some((s, dir))
}

/// Build and start the application on 127.0.0.1:0 against a fresh, migrated
/// database. Returns `None` when the backend's service is absent (skip).
pub async fn spawn_app(backend: TestBackend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with a hook to adjust the settings.
pub async fn spawn_app_with(
    backend: TestBackend,
    tweak: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    init_tracing();
    let (database, dir) = fresh_database(backend).await?;
    let db_url = database.url.clone();
    let mut settings = Settings::from_env_map(&Default::default()).expect("default settings");
    settings.host = "127.0.0.1".into();
    settings.port = 0;
    settings.shutdown_timeout = Duration::from_secs(5);
    settings.database = database;
    // No per-address limit unless a test sets one: every in-process app of
    // the suite logs in from 127.0.0.1, and Redis counters outlive a run.
    settings.login_limit.per_address = 0;
    tweak(&mut settings);
    let redis_url = settings.redis_url.as_ref().map(|u| u.as_str().to_owned());
    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    let db = app.db().clone();
    tokio::spawn(app.run_with_shutdown(std::future::pending()));
    // The default client carries the bearer token of a fixture admin, so
    // PATCH/DELETE/import tests need no log-in; tests of authentication and
    // authorization use their own clients. The admin row has id -1, outside
    // the ids listings show (`id > after`, after >= 0), so listing tests see
    // only the users they create. The session lives in the app's own store.
    let admin_id = insert_fixture_admin(&db).await;
    start_user_ids_at_random(&db).await;
    let redis = redis_url.map(|u| api::redis_conn::Redis::open(&u).expect("redis url"));
    let store = api::sessions::SessionStore::new(redis, db.clone(), Duration::from_secs(3600));
    let token = store.create(admin_id).await.expect("test session").token;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    Some(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .unwrap(),
        db,
        backend,
        db_url,
        _dir: dir,
    })
}

/// Insert the fixture admin (id -1, see [`spawn_app_with`]); returns its id.
pub async fn insert_fixture_admin(db: &Db) -> i64 {
    let sql = "INSERT INTO users (id, name, email, created_at, updated_at, role) \
               VALUES (-1, 'Fixture Admin', 'fixture-admin@example.invalid', \
               CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'admin')";
    match db {
        Db::MySql(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .expect("insert fixture admin");
    -1
}

/// Make this database hand out user ids from a random point above 10^6, so
/// apps of concurrent tests sharing one Redis never have users with the same
/// id (Redis keys like `user_sessions:<id>` are per deployment, and each test
/// is its own deployment with its own database).
pub async fn start_user_ids_at_random(db: &Db) {
    let start = 1_000_000 + i64::from(uuid::Uuid::new_v4().as_fields().0 % 1_000_000) * 1_000_000;
    let r = match db {
        Db::MySql(p) => sqlx::query(&format!("ALTER TABLE users AUTO_INCREMENT = {start}"))
            .execute(p)
            .await
            .map(|_| ()),
        Db::Postgres(p) => sqlx::query(&format!(
            "ALTER TABLE users ALTER COLUMN id RESTART WITH {start}"
        ))
        .execute(p)
        .await
        .map(|_| ()),
        Db::Sqlite(p) => {
            let seq = start - 1;
            let updated = sqlx::query(&format!(
                "UPDATE sqlite_sequence SET seq = {seq} WHERE name = 'users'"
            ))
            .execute(p)
            .await
            .map(|r| r.rows_affected());
            match updated {
                Ok(0) => sqlx::query(&format!(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('users', {seq})"
                ))
                .execute(p)
                .await
                .map(|_| ()),
                other => other.map(|_| ()),
            }
        }
    };
    r.expect("set the users id sequence");
}

/// The real `api` binary, running as a child process with captured output.
pub struct BinaryApp {
    pub child: Child,
    pub port: Option<u16>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

fn pump(r: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => into.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
}

impl BinaryApp {
    /// Start `api <args>` with a clean environment plus `envs`, in `cwd`, and
    /// wait (up to 10 s) for the "listening" log line (unless it exits first).
    pub fn spawn(args: &[&str], envs: &[(&str, &str)], cwd: &std::path::Path) -> BinaryApp {
        let mut app = BinaryApp::spawn_process(args, envs, cwd);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(port) = app.find_port() {
                app.port = Some(port);
                break;
            }
            if app.child.try_wait().unwrap().is_some() {
                // Give the pump threads a moment to drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        app
    }

    /// Start `api <args>` (a worker, cron, ...) without waiting for anything.
    pub fn spawn_process(args: &[&str], envs: &[(&str, &str)], cwd: &std::path::Path) -> BinaryApp {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_api"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().copied())
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn api binary");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().unwrap(), stdout.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        BinaryApp {
            child,
            port: None,
            stdout,
            stderr,
        }
    }

    /// Parsed JSON log records of stdout so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn find_port(&self) -> Option<u16> {
        self.stdout.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["msg"] == "listening")
                .then(|| v["port"].as_u64())?
                .map(|p| p as u16)
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{}",
            self.port.expect("server port"),
            path
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal with the `kill` command (no unsafe code needed).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Wait for the process to exit (bounded), returning its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for BinaryApp {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Create a user with a password and log in; returns (user id, token).
pub async fn sign_up_and_log_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> (i64, String) {
    let r = client
        .post(format!("{base}/users"))
        .json(&serde_json::json!({"name": "Session User", "email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user: serde_json::Value = r.json().await.unwrap();
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    let token = log_in(client, base, email, password).await;
    (user["id"].as_i64().unwrap(), token)
}

/// POST /sessions; returns the token (asserts 201).
pub async fn log_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let r = client
        .post(format!("{base}/sessions"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["expires_at"].is_string());
    body["token"].as_str().unwrap().to_owned()
}

/// Assert a response is an RFC 9457 problem with this status; return the body.
pub async fn assert_problem(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: serde_json::Value = resp.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string(), "type: {body}");
    assert!(body["title"].is_string(), "title: {body}");
    assert!(body["detail"].is_string(), "detail: {body}");
    body
}
