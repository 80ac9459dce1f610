//! Sessions: log in/out, bearer checks on PATCH/DELETE, expiry, revocation,
//! the Redis store shared by two `api serve` processes.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    assert_problem, log_in, service_url, sign_up_and_log_in, spawn_app, spawn_app_with, BinaryApp,
    TestApp, TestBackend,
};

fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn assert_401(resp: reqwest::Response) {
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert_problem(resp, 401).await;
}

async fn patch(c: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = c.patch(url).json(&json!({"name": "Renamed"}));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

async fn login_flow(app: TestApp) {
    let c = plain();
    let (id, token) =
        sign_up_and_log_in(&c, &app.address, "sess@example.com", "correct horse").await;
    let user_url = app.url(&format!("/users/{id}"));

    // Missing / malformed / unknown token → 401 with WWW-Authenticate.
    assert_401(patch(&c, &user_url, None).await).await;
    assert_401(patch(&c, &user_url, Some("not-a-token")).await).await;
    assert_401(c.delete(&user_url).send().await.unwrap()).await;
    let r = c
        .patch(&user_url)
        .header("authorization", "Basic Zm9vOmJhcg==")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_401(r).await;

    // Valid token.
    let r = patch(&c, &user_url, Some(&token)).await;
    assert_eq!(r.status(), 200);

    // Wrong password, unknown e-mail, user without password → 401.
    for (email, pw) in [
        ("sess@example.com", "wrong horse"),
        ("nobody@example.com", "correct horse"),
    ] {
        let r = c
            .post(app.url("/sessions"))
            .json(&json!({"email": email, "password": pw}))
            .send()
            .await
            .unwrap();
        assert_401(r).await;
    }
    let r = app.create("No Password", "nopw@example.com").await;
    assert_eq!(r.status(), 201);
    let r = c
        .post(app.url("/sessions"))
        .json(&json!({"email": "nopw@example.com", "password": "anything at all"}))
        .send()
        .await
        .unwrap();
    assert_401(r).await;
    // Too-short password on sign-up → 422.
    let r = c
        .post(app.url("/users"))
        .json(&json!({"name": "S", "email": "short@example.com", "password": "1234567"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 422).await;
    assert_eq!(body["errors"][0]["field"], "password");

    // Log out → the token is revoked.
    let r = c
        .delete(app.url("/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_401(patch(&c, &user_url, Some(&token)).await).await;
    // A new log-in works and DELETE /users/{id} with it.
    let token = log_in(&c, &app.address, "sess@example.com", "correct horse").await;
    let r = c
        .delete(&user_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

async fn expiry(app: TestApp) {
    let c = plain();
    let (id, token) =
        sign_up_and_log_in(&c, &app.address, "exp@example.com", "correct horse").await;
    let user_url = app.url(&format!("/users/{id}"));
    assert_eq!(patch(&c, &user_url, Some(&token)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_401(patch(&c, &user_url, Some(&token)).await).await;
}

#[tokio::test]
async fn sqlite_db_store_login_logout() {
    login_flow(spawn_app(TestBackend::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn mariadb_db_store_login_logout() {
    if let Some(app) = spawn_app(TestBackend::MySql).await {
        login_flow(app).await;
    }
}

#[tokio::test]
async fn postgres_db_store_login_logout() {
    if let Some(app) = spawn_app(TestBackend::Postgres).await {
        login_flow(app).await;
    }
}

#[tokio::test]
async fn redis_store_login_logout() {
    let Some(redis) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let app = spawn_app_with(TestBackend::Sqlite, |s| s.redis_url = Some(redis.into()))
        .await
        .unwrap();
    login_flow(app).await;
}

#[tokio::test]
async fn db_store_sessions_expire() {
    let app = spawn_app_with(TestBackend::Sqlite, |s| {
        s.session_ttl = Duration::from_secs(1)
    })
    .await
    .unwrap();
    expiry(app).await;
}

#[tokio::test]
async fn redis_sessions_expire() {
    let Some(redis) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let app = spawn_app_with(TestBackend::Sqlite, |s| {
        s.redis_url = Some(redis.into());
        s.session_ttl = Duration::from_secs(1);
    })
    .await
    .unwrap();
    expiry(app).await;
}

/// Two `api serve` processes (same PostgreSQL database, same Redis): a token
/// issued by one is accepted by the other, and revoking it on one revokes it
/// on both. No session state lives in a process.
#[tokio::test(flavor = "multi_thread")]
async fn token_from_one_process_is_accepted_by_another() {
    let Some(redis) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let Some(app) = spawn_app(TestBackend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("DATABASE_URL", app.db_url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("PORT", "0"),
    ];
    let a = BinaryApp::spawn(&["serve"], &envs, dir.path());
    let b = BinaryApp::spawn(&["serve"], &envs, dir.path());
    let (a_base, b_base) = (a.url(""), b.url(""));
    let c = plain();
    let (id, token) = sign_up_and_log_in(&c, &a_base, "two@example.com", "correct horse").await;
    let on_b = format!("{b_base}/users/{id}");
    let on_a = format!("{a_base}/users/{id}");
    assert_eq!(patch(&c, &on_b, Some(&token)).await.status(), 200);
    assert_eq!(patch(&c, &on_a, Some(&token)).await.status(), 200);
    let r = c
        .delete(format!("{b_base}/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_401(patch(&c, &on_a, Some(&token)).await).await;
    assert_401(patch(&c, &on_b, Some(&token)).await).await;
    // The password never reaches the logs.
    for p in [&a, &b] {
        for l in p.stdout_lines() {
            assert!(!l.contains("correct horse"), "password logged: {l}");
        }
    }
}
