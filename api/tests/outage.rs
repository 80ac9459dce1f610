//! Backing-service outages and recovery, against the private PostgreSQL and
//! Redis of `scripts/test-services.sh` (stopped and restarted via
//! `$TEST_SERVICES_SCRIPT stop-service|start-service postgres|redis`).
//!
//! Its own test binary: cargo runs test binaries one after another, so the
//! outage cannot disturb the main suite.

#[path = "api/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::{Duration, Instant};

use helpers::{assert_problem, spawn_app, TestBackend};

fn services(action: &str, script: &str) {
    service(action, script, "postgres")
}

fn service(action: &str, script: &str, name: &str) {
    let st = Command::new(script)
        .args([action, name])
        .status()
        .expect("run TEST_SERVICES_SCRIPT");
    assert!(st.success(), "{script} {action} {name} failed");
}

/// Restarts PostgreSQL even if the test fails half-way.
struct Restart<'a>(&'a str);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        services("start-service", self.0);
    }
}

/// Restarts Redis even if the test fails half-way.
struct RestartRedis<'a>(&'a str);

impl Drop for RestartRedis<'_> {
    fn drop(&mut self) {
        service("start-service", self.0, "redis");
    }
}

/// Redis (the session store) down: authenticated calls get a 503 problem
/// quickly, unauthenticated ones keep working; when Redis returns the same
/// process recovers (a new log-in works and its token is accepted).
#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_gives_503_for_authenticated_calls_and_recovers() {
    let Some(script) = helpers::service_url("TEST_SERVICES_SCRIPT") else {
        return;
    };
    let Some(redis) = helpers::service_url("TEST_REDIS_URL") else {
        return;
    };
    // SQLite, so the PostgreSQL outage test running alongside cannot interfere.
    let app = helpers::spawn_app_with(TestBackend::Sqlite, |s| s.redis_url = Some(redis.into()))
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let (id, token) =
        helpers::sign_up_and_log_in(&c, &app.address, "redis@example.com", "correct horse").await;
    let user_url = app.url(&format!("/users/{id}"));
    let patch = |token: String| {
        c.patch(&user_url)
            .bearer_auth(token)
            .json(&serde_json::json!({"name": "Renamed"}))
            .send()
    };
    assert_eq!(patch(token.clone()).await.unwrap().status(), 200);

    service("stop-service", &script, "redis");
    let guard = RestartRedis(&script);
    let t = Instant::now();
    assert_problem(patch(token.clone()).await.unwrap(), 503).await;
    let r = c
        .post(app.url("/sessions"))
        .json(&serde_json::json!({"email": "redis@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 503).await;
    let r = c
        .delete(app.url("/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(r, 503).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Reads need no session and keep working.
    assert_eq!(c.get(&user_url).send().await.unwrap().status(), 200);

    drop(guard); // start-service redis
    let t = Instant::now();
    let token = loop {
        let r = c
            .post(app.url("/sessions"))
            .json(&serde_json::json!({"email": "redis@example.com", "password": "correct horse"}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            let v: serde_json::Value = r.json().await.unwrap();
            break v["token"].as_str().unwrap().to_owned();
        }
        assert_eq!(r.status(), 503);
        assert!(t.elapsed() < Duration::from_secs(60), "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("redis: recovered {:?} after restart", t.elapsed());
    assert_eq!(patch(token).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outage_gives_503_and_recovers_without_restart() {
    let Some(script) = helpers::service_url("TEST_SERVICES_SCRIPT") else {
        return;
    };
    let Some(app) = spawn_app(TestBackend::Postgres).await else {
        return;
    };
    let created: serde_json::Value = app
        .create("Outage", "outage@example.com")
        .await
        .json()
        .await
        .unwrap();
    let user_url = app.url(&format!("/users/{}", created["id"]));
    assert_eq!(
        app.client.get(&user_url).send().await.unwrap().status(),
        200
    );

    services("stop-service", &script);
    let guard = Restart(&script);

    for path in [user_url.as_str(), &app.url("/readyz"), &app.url("/users")] {
        let t = Instant::now();
        let resp = app.client.get(path).send().await.unwrap();
        let elapsed = t.elapsed();
        assert_problem(resp, 503).await;
        assert!(elapsed < Duration::from_secs(5), "{path} took {elapsed:?}");
    }
    let resp = app.create("Down", "down@example.com").await;
    assert_problem(resp, 503).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "liveness is independent of the database"
    );

    drop(guard); // start-service postgres
    let t = Instant::now();
    loop {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("recovered {:?} after restart", t.elapsed());
    let got: serde_json::Value = app
        .client
        .get(&user_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, created, "same process serves the same data again");
}
