//! Database outage and recovery, against the private PostgreSQL of
//! `scripts/test-services.sh` (stopped and restarted via
//! `$TEST_SERVICES_SCRIPT stop-service|start-service postgres`).
//!
//! Its own test binary: cargo runs test binaries one after another, so the
//! outage cannot disturb the main suite.

#[path = "api/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::{Duration, Instant};

use helpers::{assert_problem, spawn_app, TestBackend};

fn services(action: &str, script: &str) {
    let st = Command::new(script)
        .args([action, "postgres"])
        .status()
        .expect("run TEST_SERVICES_SCRIPT");
    assert!(st.success(), "{script} {action} postgres failed");
}

/// Restarts PostgreSQL even if the test fails half-way.
struct Restart<'a>(&'a str);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        services("start-service", self.0);
    }
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
