//! Log-in rate limit: per e-mail address and per client address, 429 problem
//! with `Retry-After`, counted in the database (SQLite, MariaDB, PostgreSQL)
//! or in Redis, and shared by two real `api serve` processes.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    assert_problem, service_url, spawn_app_with, BinaryApp, TestApp, TestBackend,
};

fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn attempt(
    c: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut r = c
        .post(format!("{base}/sessions"))
        .json(&json!({"email": email, "password": password}));
    if let Some(x) = forwarded_for {
        r = r.header("x-forwarded-for", x);
    }
    r.send().await.unwrap()
}

/// Assert a 429 problem with a Retry-After within the window.
async fn assert_limited(resp: reqwest::Response, window_s: u64) {
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=window_s).contains(&retry), "Retry-After {retry}");
    let body = assert_problem(resp, 429).await;
    assert_eq!(body["type"], "/problems/too-many-requests");
}

async fn sign_up(c: &reqwest::Client, base: &str, email: &str, password: &str) {
    let r = c
        .post(format!("{base}/users"))
        .json(&json!({"name": "Limited", "email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn limits(app: TestApp) {
    let c = plain();
    let base = app.address.clone();
    sign_up(&c, &base, "lim@example.com", "right password").await;

    // Per e-mail (3 per window): the 4th attempt is refused before the
    // password is looked at — even the right one. Case and spaces do not
    // make a new e-mail.
    for _ in 0..3 {
        assert_problem(
            attempt(&c, &base, "lim@example.com", "wrong", None).await,
            401,
        )
        .await;
    }
    assert_limited(
        attempt(&c, &base, " LIM@example.com", "right password", None).await,
        600,
    )
    .await;
    // Another e-mail from the same address still gets through.
    sign_up(&c, &base, "other@example.com", "right password").await;
    assert_eq!(
        attempt(&c, &base, "other@example.com", "right password", None)
            .await
            .status(),
        201
    );
    // A successful log-in clears its e-mail counter.
    for _ in 0..2 {
        assert_problem(
            attempt(&c, &base, "other@example.com", "wrong", None).await,
            401,
        )
        .await;
    }
    assert_eq!(
        attempt(&c, &base, "other@example.com", "right password", None)
            .await
            .status(),
        201
    );
    for _ in 0..3 {
        assert_problem(
            attempt(&c, &base, "other@example.com", "wrong", None).await,
            401,
        )
        .await;
    }

    // Per address (12 per window, 11 used so far): fresh e-mails
    // from the same client are refused once the address is over its limit.
    // X-Forwarded-For is ignored: no proxy is trusted here.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = attempt(
            &c,
            &base,
            &format!("n{i}@example.com"),
            "x",
            Some(&format!("203.0.113.{i}")),
        )
        .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 429, 429], "address limit");
    assert_limited(
        attempt(&c, &base, "fresh@example.com", "x", None).await,
        600,
    )
    .await;
}

fn limited_settings(s: &mut api::config::Settings) {
    s.login_limit.per_email = 3;
    s.login_limit.per_address = 12;
    s.login_limit.window = Duration::from_secs(600);
}

#[tokio::test]
async fn sqlite_login_limits() {
    limits(
        spawn_app_with(TestBackend::Sqlite, limited_settings)
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn mariadb_login_limits() {
    if let Some(app) = spawn_app_with(TestBackend::MySql, limited_settings).await {
        limits(app).await;
    }
}

#[tokio::test]
async fn postgres_login_limits() {
    if let Some(app) = spawn_app_with(TestBackend::Postgres, limited_settings).await {
        limits(app).await;
    }
}

#[tokio::test]
async fn redis_login_limits() {
    let Some(redis) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let app = spawn_app_with(TestBackend::Sqlite, |s| {
        limited_settings(s);
        s.redis_url = Some(redis.into());
        // A window of its own, so counters left by other runs in the shared
        // Redis cannot matter (keys are per window start).
        s.login_limit.window = Duration::from_secs(599);
    })
    .await
    .unwrap();
    // Redis is shared by concurrent tests: use e-mails and addresses unique to this run.
    let c = plain();
    let base = app.address.clone();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("r-{tag}@example.com");
    sign_up(&c, &base, &email, "right password").await;
    for _ in 0..3 {
        assert_problem(attempt(&c, &base, &email, "wrong", None).await, 401).await;
    }
    assert_limited(
        attempt(&c, &base, &email, "right password", None).await,
        599,
    )
    .await;
}

/// Behind a trusted proxy each forwarded client has its own address limit;
/// a spoofed first entry does not change which client is counted.
#[tokio::test]
async fn trusted_proxy_clients_are_counted_apart() {
    let app = spawn_app_with(TestBackend::Sqlite, |s| {
        limited_settings(s);
        s.login_limit.per_address = 2;
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    .unwrap();
    let c = plain();
    let base = app.address.clone();
    for i in 0..2 {
        let x = format!("198.51.100.{i}, 203.0.113.1");
        assert_problem(
            attempt(&c, &base, &format!("a{i}@example.com"), "x", Some(&x)).await,
            401,
        )
        .await;
    }
    // Same client behind the proxy (the spoofable left entry differs): limited.
    let r = attempt(
        &c,
        &base,
        "a9@example.com",
        "x",
        Some("192.0.2.77, 203.0.113.1"),
    )
    .await;
    assert_limited(r, 600).await;
    // Another client: its own counter.
    let r = attempt(&c, &base, "b@example.com", "x", Some("203.0.113.2")).await;
    assert_problem(r, 401).await;
}

/// Two `api serve` processes count into the same place: attempts spread over
/// both are limited as one. `redis`: counters in Redis; else in the database.
async fn two_processes_share_the_limit(use_redis: bool) {
    let redis = if use_redis {
        match service_url("TEST_REDIS_URL") {
            Some(r) => Some(r),
            None => return,
        }
    } else {
        None
    };
    let Some(app) = crate::helpers::spawn_app(TestBackend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut envs = vec![
        ("DATABASE_URL", app.db_url.clone()),
        ("PORT", "0".to_owned()),
        ("LOGIN_LIMIT_PER_EMAIL", "4".to_owned()),
        ("LOGIN_LIMIT_PER_ADDRESS", "1000".to_owned()),
        ("LOGIN_LIMIT_WINDOW", "10m".to_owned()),
    ];
    if let Some(r) = &redis {
        envs.push(("REDIS_URL", r.clone()));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = BinaryApp::spawn(&["serve"], &envs, dir.path());
    let b = BinaryApp::spawn(&["serve"], &envs, dir.path());
    let c = plain();
    let email = format!("two-{}@example.com", uuid::Uuid::new_v4().simple());
    sign_up(&c, &a.url(""), &email, "right password").await;
    // Four attempts, alternating between the processes: each process saw
    // only two, yet the fifth is refused by both.
    for (i, p) in [&a, &b, &a, &b].iter().enumerate() {
        let r = attempt(&c, &p.url(""), &email, "wrong", None).await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    assert_limited(
        attempt(&c, &a.url(""), &email, "right password", None).await,
        600,
    )
    .await;
    assert_limited(
        attempt(&c, &b.url(""), &email, "right password", None).await,
        600,
    )
    .await;
    // The process logs never contain the password.
    for p in [&a, &b] {
        for l in p.stdout_lines() {
            assert!(!l.contains("right password"), "password logged: {l}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_share_the_limit_in_the_database() {
    two_processes_share_the_limit(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_share_the_limit_in_redis() {
    two_processes_share_the_limit(true).await;
}
