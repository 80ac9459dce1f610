//! `api worker` and `api cron` as real processes against real databases:
//! concurrent workers import a 50,000-user file exactly once, a SIGKILLed
//! worker's job is resumed after its lease expires, a SIGTERMed worker
//! releases its job at once, and two cron processes run each tick once.
//!
//! Its own test binary, so these CPU-heavy tests never overlap the main suite.

#[path = "api/helpers.rs"]
mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use api::db::Db;
use helpers::{spawn_app, BinaryApp, TestApp, TestBackend};
use serde_json::Value;

fn ndjson(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| format!("{{\"name\":\"User {i}\",\"email\":\"{prefix}-{i}@example.com\"}}\n"))
        .collect()
}

async fn upload(app: &TestApp, body: String, content_type: &str) -> i64 {
    let r = app
        .client
        .post(app.url("/users/import"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    let id = v["job_id"].as_i64().unwrap();
    assert_eq!(loc, format!("/jobs/{id}"));
    id
}

async fn job(app: &TestApp, id: i64) -> Value {
    let r = app
        .client
        .get(app.url(&format!("/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Poll the job until `pred` holds (panics after `within`).
async fn wait_job(
    app: &TestApp,
    id: i64,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let t = Instant::now();
    loop {
        let j = job(app, id).await;
        if pred(&j) {
            return j;
        }
        if t.elapsed() > within {
            let lines = std::fs::read_to_string(
                std::env::temp_dir().join(format!("worker-log-{}", std::process::id())),
            )
            .unwrap_or_default();
            panic!("job never reached the condition: {j}\n{lines}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_like(db: &Db, prefix: &str) -> (i64, i64) {
    let pat = format!("{prefix}-%");
    let sql = match db {
        Db::Postgres(_) => "SELECT COUNT(*), COUNT(DISTINCT email) FROM users WHERE email LIKE $1",
        _ => "SELECT COUNT(*), COUNT(DISTINCT email) FROM users WHERE email LIKE ?",
    };
    match db {
        Db::MySql(p) => sqlx::query_as(sql).bind(pat).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).bind(pat).fetch_one(p).await.unwrap(),
        Db::Sqlite(p) => sqlx::query_as(sql).bind(pat).fetch_one(p).await.unwrap(),
    }
}

fn worker(app: &TestApp, dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> BinaryApp {
    let mut envs = vec![
        ("DATABASE_URL", app.db_url.as_str()),
        ("JOB_POLL_INTERVAL", "100ms"),
        ("RUST_LOG", "info"),
    ];
    envs.extend_from_slice(extra);
    BinaryApp::spawn_process(&["worker"], &envs, dir.path())
}

/// Workers whose log shows a committed batch of job `id`.
fn batch_pids(workers: &[&BinaryApp], id: i64) -> BTreeSet<u32> {
    workers
        .iter()
        .filter(|w| {
            w.records().iter().any(|r| {
                r["msg"].as_str().unwrap_or("").ends_with("batch committed") && r["job_id"] == id
            })
        })
        .map(|w| w.pid())
        .collect()
}

async fn three_workers_import_50k_once(backend: TestBackend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 50,000 users, plus 10 invalid lines and 5 duplicates of earlier lines.
    let mut body = ndjson(50_000, "imp");
    for i in 0..10 {
        body.push_str(&format!(
            "{{\"name\":\"Bad {i}\",\"email\":\"not-an-email\"}}\n"
        ));
    }
    body.push_str(&ndjson(5, "imp"));
    let id = upload(&app, body, "application/x-ndjson").await;
    let j = job(&app, id).await;
    assert_eq!(j["state"], "queued");
    assert_eq!(j["progress"]["total"], 50_015);

    let extra = [
        ("JOB_BATCH_SIZE", "500"),
        ("JOB_LEASE", "10s"),
        ("JOB_BATCH_PAUSE", "30ms"),
    ];
    let mut workers: Vec<BinaryApp> = (0..3).map(|_| worker(&app, &dir, &extra)).collect();
    // Half-way, SIGTERM whichever worker holds the job: another one of the
    // three resumes it at once.
    let j = wait_job(&app, id, Duration::from_secs(120), |j| {
        j["progress"]["done"].as_i64().unwrap() >= 20_000
    })
    .await;
    let holder = j["locked_by"].as_str().unwrap_or("").to_owned();
    let idx = workers
        .iter()
        .position(|w| holder.contains(&format!(":{}:", w.pid())))
        .unwrap_or_else(|| panic!("holder {holder} is none of the workers"));
    workers[idx].signal("TERM");
    assert!(workers[idx].wait_exit(Duration::from_secs(20)).success());

    let j = wait_job(&app, id, Duration::from_secs(180), |j| j["state"] == "done").await;
    assert_eq!(j["progress"]["done"], 50_015, "{j}");
    assert_eq!(j["progress"]["percent"], 100.0, "{j}");
    assert_eq!(j["progress"]["imported"], 50_000, "{j}");
    assert_eq!(j["progress"]["errors"], 10, "{j}");
    assert_eq!(j["progress"]["skipped"], 5, "{j}");
    assert_eq!(count_like(&app.db, "imp").await, (50_000, 50_000));
    // Plus the harness's fixture admin.
    assert_eq!(app.db.count_users().await.unwrap(), 50_001);

    let refs: Vec<&BinaryApp> = workers.iter().collect();
    assert!(batch_pids(&refs, id).len() >= 2, "the job changed hands");
    for w in &mut workers[..] {
        if w.child.try_wait().unwrap().is_none() {
            w.signal("TERM");
            assert!(w.wait_exit(Duration::from_secs(20)).success());
        }
        for r in w.records() {
            assert_eq!(r["process_type"], "worker", "{r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_three_workers_import_50k_once() {
    three_workers_import_50k_once(TestBackend::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_three_workers_import_50k_once() {
    three_workers_import_50k_once(TestBackend::Postgres).await;
}

const SLOW: [(&str, &str); 2] = [("JOB_BATCH_SIZE", "100"), ("JOB_BATCH_PAUSE", "100ms")];

async fn sigkilled_worker_job_resumes_after_lease(backend: TestBackend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&app, ndjson(3000, "kill"), "application/x-ndjson").await;
    let lease = [SLOW[0], SLOW[1], ("JOB_LEASE", "2s")];
    let mut a = worker(&app, &dir, &lease);
    let j = wait_job(&app, id, Duration::from_secs(30), |j| {
        j["progress"]["done"].as_i64().unwrap() >= 500
    })
    .await;
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5));
    let killed_at = Instant::now();
    let frozen = job(&app, id).await["progress"]["done"].clone();
    assert!(j["locked_by"]
        .as_str()
        .unwrap()
        .contains(&format!(":{}:", a.pid())));

    let mut b = worker(&app, &dir, &lease);
    // Until the lease expires nobody may take the job.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let j = job(&app, id).await;
    assert_eq!(j["state"], "running");
    assert_eq!(
        j["progress"]["done"], frozen,
        "moved before the lease expired"
    );
    assert!(j["locked_by"]
        .as_str()
        .unwrap()
        .contains(&format!(":{}:", a.pid())));

    let j = wait_job(&app, id, Duration::from_secs(60), |j| {
        j["locked_by"]
            .as_str()
            .is_some_and(|l| l.contains(&format!(":{}:", b.pid())))
            || j["state"] == "done"
    })
    .await;
    assert!(
        killed_at.elapsed() >= Duration::from_millis(1500),
        "taken over too early: {j}"
    );
    let j = wait_job(&app, id, Duration::from_secs(60), |j| j["state"] == "done").await;
    assert_eq!(j["progress"]["done"], 3000);
    assert_eq!(j["progress"]["imported"], 3000);
    assert_eq!(j["attempts"], 2, "{j}");
    assert_eq!(count_like(&app.db, "kill").await, (3000, 3000));
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).success());
}

async fn sigtermed_worker_releases_job_at_once(backend: TestBackend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&app, ndjson(3000, "term"), "application/x-ndjson").await;
    // A long lease: only an explicit release lets another worker in quickly.
    let lease = [SLOW[0], SLOW[1], ("JOB_LEASE", "60s")];
    let mut a = worker(&app, &dir, &lease);
    wait_job(&app, id, Duration::from_secs(30), |j| {
        j["progress"]["done"].as_i64().unwrap() >= 500
    })
    .await;
    a.signal("TERM");
    assert!(a.wait_exit(Duration::from_secs(10)).success());
    let j = job(&app, id).await;
    assert_eq!(j["state"], "queued", "{j}");
    assert!(j["locked_by"].is_null(), "{j}");
    let done = j["progress"]["done"].as_i64().unwrap();
    assert!(done > 0 && done < 3000, "{j}");
    assert!(a.records().iter().any(|r| r["msg"]
        .as_str()
        .unwrap_or("")
        .ends_with("job released for another worker")));

    let t = Instant::now();
    let mut b = worker(
        &app,
        &dir,
        &[("JOB_BATCH_SIZE", "100"), ("JOB_LEASE", "60s")],
    );
    let j = wait_job(&app, id, Duration::from_secs(30), |j| j["state"] == "done").await;
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(j["progress"]["imported"], 3000, "{j}");
    assert_eq!(j["attempts"], 1, "a release is not a failed attempt: {j}");
    assert_eq!(count_like(&app.db, "term").await, (3000, 3000));
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_sigkilled_worker_job_resumes_after_lease() {
    sigkilled_worker_job_resumes_after_lease(TestBackend::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sigkilled_worker_job_resumes_after_lease() {
    sigkilled_worker_job_resumes_after_lease(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_sigkilled_worker_job_resumes_after_lease() {
    sigkilled_worker_job_resumes_after_lease(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_sigtermed_worker_releases_job_at_once() {
    sigtermed_worker_releases_job_at_once(TestBackend::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sigtermed_worker_releases_job_at_once() {
    sigtermed_worker_releases_job_at_once(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_sigtermed_worker_releases_job_at_once() {
    sigtermed_worker_releases_job_at_once(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_import_counts_errors_and_duplicates() {
    let app = spawn_app(TestBackend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = "Name,Email,Password\r\n\
               Ada,ada@example.com,correct horse\r\n\
               \"Lovelace, Ada\",lovelace@example.com,\r\n\
               Bad,not-an-email,\r\n\
               Short,short@example.com,1234\r\n\
               Dup,ADA@example.com,\r\n";
    let id = upload(&app, csv.to_owned(), "text/csv; charset=utf-8").await;
    let mut w = worker(&app, &dir, &[]);
    let j = wait_job(&app, id, Duration::from_secs(30), |j| j["state"] == "done").await;
    assert_eq!(j["progress"]["total"], 5, "{j}");
    assert_eq!(j["progress"]["imported"], 2, "{j}");
    assert_eq!(j["progress"]["errors"], 2, "{j}");
    assert_eq!(j["progress"]["skipped"], 1, "{j}");
    // The imported password works for POST /sessions.
    helpers::log_in(
        &app.client,
        &app.address,
        "ada@example.com",
        "correct horse",
    )
    .await;
    w.signal("TERM");
    assert!(w.wait_exit(Duration::from_secs(10)).success());

    // Bad uploads.
    let r = app
        .client
        .post(app.url("/users/import"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    helpers::assert_problem(r, 415).await;
    let r = app
        .client
        .post(app.url("/users/import"))
        .header("content-type", "text/csv")
        .body("foo,bar\n1,2\n")
        .send()
        .await
        .unwrap();
    helpers::assert_problem(r, 422).await;
    let r = reqwest::Client::new()
        .post(app.url("/users/import"))
        .header("content-type", "text/csv")
        .body("name,email\n")
        .send()
        .await
        .unwrap();
    helpers::assert_problem(r, 401).await;
    let r = app
        .client
        .get(app.url("/jobs/999999"))
        .send()
        .await
        .unwrap();
    helpers::assert_problem(r, 404).await;
}

/// Two `api cron` processes on one database, a task every second: each
/// tick's `users.stats` event is logged exactly once across both.
async fn two_cron_processes_run_each_tick_once(backend: TestBackend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("DATABASE_URL", app.db_url.as_str()),
        ("CRON_STATS", "* * * * * *"),
        ("CRON_PURGE", "* * * * * *"),
    ];
    let mut a = BinaryApp::spawn_process(&["cron"], &envs, dir.path());
    let mut b = BinaryApp::spawn_process(&["cron"], &envs, dir.path());
    tokio::time::sleep(Duration::from_millis(4500)).await;
    a.signal("TERM");
    b.signal("TERM");
    assert!(a.wait_exit(Duration::from_secs(10)).success());
    assert!(b.wait_exit(Duration::from_secs(10)).success());

    for msg in ["users.stats", "cron.purge"] {
        let mut per_tick: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for p in [&a, &b] {
            for r in p.records() {
                assert_eq!(r["process_type"], "cron", "{r}");
                if r["msg"] == msg {
                    per_tick
                        .entry(r["tick_at"].as_i64().unwrap())
                        .or_default()
                        .push(p.pid());
                    if msg == "users.stats" {
                        assert!(
                            r["users_total"].is_i64() && r["jobs_queued"].is_i64(),
                            "{r}"
                        );
                    }
                }
            }
        }
        assert!(
            per_tick.len() >= 3,
            "{msg}: only {} ticks: {per_tick:?}",
            per_tick.len()
        );
        for (tick, pids) in &per_tick {
            assert_eq!(pids.len(), 1, "{msg} tick {tick} ran {} times", pids.len());
        }
        eprintln!("{msg}: {per_tick:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_two_cron_processes_run_each_tick_once() {
    two_cron_processes_run_each_tick_once(TestBackend::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_two_cron_processes_run_each_tick_once() {
    two_cron_processes_run_each_tick_once(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_two_cron_processes_run_each_tick_once() {
    two_cron_processes_run_each_tick_once(TestBackend::Sqlite).await;
}

/// The purge task deletes expired database sessions and finished jobs older
/// than `JOB_RETENTION`, and keeps everything else.
#[tokio::test(flavor = "multi_thread")]
async fn purge_task_deletes_expired_sessions_and_old_jobs() {
    let app = spawn_app(TestBackend::Sqlite).await.unwrap();
    let short = api::sessions::SessionStore::new(None, app.db.clone(), Duration::from_millis(1));
    // Sessions of the fixture admin (id -1), a user that exists.
    let expired = short.create(-1).await.unwrap().token;
    let long = api::sessions::SessionStore::new(None, app.db.clone(), Duration::from_secs(3600));
    let live = long.create(-1).await.unwrap().token;
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&app, ndjson(3, "purge"), "application/x-ndjson").await;
    let queued = upload(&app, ndjson(3, "purge2"), "application/x-ndjson").await;
    let mut w = worker(&app, &dir, &[]);
    wait_job(&app, id, Duration::from_secs(30), |j| j["state"] == "done").await;
    wait_job(&app, queued, Duration::from_secs(30), |j| {
        j["state"] == "done"
    })
    .await;
    w.signal("TERM");
    assert!(w.wait_exit(Duration::from_secs(10)).success());
    let third = upload(&app, ndjson(3, "purge3"), "application/x-ndjson").await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let cron = api::config::CronSettings {
        job_retention: Duration::from_millis(10),
        ..Default::default()
    };
    api::cron::run_task(&app.db, &cron, api::cron::Task::Purge, 0)
        .await
        .unwrap();
    assert_eq!(short.validate(&expired).await.unwrap(), None);
    assert_eq!(
        long.validate(&live).await.unwrap().map(|p| p.user_id),
        Some(-1)
    );
    let Db::Sqlite(p) = &app.db else {
        unreachable!()
    };
    let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(sessions, 2, "the live session and the test client's remain");
    assert!(app.db.get_job(id).await.unwrap().is_none());
    assert!(app.db.get_job(queued).await.unwrap().is_none());
    assert_eq!(
        app.db.get_job(third).await.unwrap().unwrap().state,
        "queued"
    );
}
