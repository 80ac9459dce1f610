//! Authorization: own account only for PATCH/DELETE (403 otherwise), admins
//! change anyone, imports and jobs are for admins, the admin role comes only
//! from `api users promote`, and deleting a user revokes all of their
//! sessions in both stores. On SQLite, MariaDB and PostgreSQL.

use std::time::Duration;

use api::authz::Role;
use api::db::Db;
use serde_json::{json, Value};

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

async fn patch_name(c: &reqwest::Client, url: &str, token: &str, name: &str) -> reqwest::Response {
    c.patch(url)
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
}

async fn delete(c: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    c.delete(url).bearer_auth(token).send().await.unwrap()
}

async fn status_with(c: &reqwest::Client, url: &str, token: &str) -> u16 {
    c.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Database sessions of a user.
async fn db_sessions(db: &Db, user_id: i64) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM sessions WHERE user_id = {}", user_id);
    match db {
        Db::MySql(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
        Db::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
    }
    .unwrap()
}

async fn owner_or_admin(app: TestApp) {
    let c = plain();
    let base = app.address.clone();
    let (alice, alice_tok) = sign_up_and_log_in(&c, &base, "alice@example.com", "alice pass").await;
    let (bob, bob_tok) = sign_up_and_log_in(&c, &base, "bob@example.com", "bob's pass").await;
    let bob_tok2 = log_in(&c, &base, "bob@example.com", "bob's pass").await;
    let alice_url = app.url(&format!("/users/{alice}"));
    let bob_url = app.url(&format!("/users/{bob}"));

    // Someone else's account, or an id that does not exist: 403, never 404.
    for url in [&bob_url, &app.url("/users/999999")] {
        let body = assert_problem(patch_name(&c, url, &alice_tok, "Mallory").await, 403).await;
        assert_eq!(body["type"], "/problems/forbidden");
        assert_problem(delete(&c, url, &alice_tok).await, 403).await;
    }
    let bob_now: Value = c.get(&bob_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(bob_now["name"], "Session User", "bob unchanged");
    // Own account: allowed. A `role` field is not an API field: ignored.
    let r = c
        .patch(&alice_url)
        .bearer_auth(&alice_tok)
        .json(&json!({"name": "Alice", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.db.user_role(alice).await.unwrap().as_deref(),
        Some("user")
    );
    assert_problem(patch_name(&c, &bob_url, &alice_tok, "Mallory").await, 403).await;
    // Imports and jobs are for admins.
    let r = c
        .post(app.url("/users/import"))
        .bearer_auth(&alice_tok)
        .header("content-type", "application/x-ndjson")
        .body("{\"name\":\"X\",\"email\":\"x@example.com\"}\n")
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;
    assert_eq!(status_with(&c, &app.url("/jobs/1"), &alice_tok).await, 403);
    assert_eq!(
        status_with(&c, &app.url("/jobs/1"), "not-a-token").await,
        401
    );

    // Promotion (the admin process's library call) takes effect on the
    // existing token at once; an admin changes anyone, and gets 404s.
    api::admin::set_role(&app.db, "ALICE@example.com", Role::Admin)
        .await
        .unwrap();
    let r = patch_name(&c, &bob_url, &alice_tok, "Robert").await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["name"], "Robert");
    assert_problem(delete(&c, &app.url("/users/999999"), &alice_tok).await, 404).await;
    assert_eq!(
        status_with(&c, &app.url("/jobs/999999"), &alice_tok).await,
        404
    );

    // The admin deletes bob: both of bob's sessions are revoked.
    assert_eq!(db_sessions(&app.db, bob).await, 2);
    assert_eq!(delete(&c, &bob_url, &alice_tok).await.status(), 204);
    assert_eq!(db_sessions(&app.db, bob).await, 0);
    for t in [&bob_tok, &bob_tok2] {
        assert_problem(patch_name(&c, &bob_url, t, "Bob").await, 401).await;
        let r = c
            .delete(app.url("/sessions/current"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_problem(r, 401).await;
    }
    // Demotion also applies at once; deleting oneself revokes one's tokens.
    api::admin::set_role(&app.db, "alice@example.com", Role::User)
        .await
        .unwrap();
    let (carol, _) = sign_up_and_log_in(&c, &base, "carol@example.com", "carol pass").await;
    let carol_url = app.url(&format!("/users/{carol}"));
    assert_problem(delete(&c, &carol_url, &alice_tok).await, 403).await;
    assert_eq!(delete(&c, &alice_url, &alice_tok).await.status(), 204);
    assert_problem(patch_name(&c, &alice_url, &alice_tok, "A").await, 401).await;
    // No such user for the admin process.
    let e = api::admin::set_role(&app.db, "nobody@example.com", Role::Admin).await;
    assert!(
        matches!(e, Err(api::admin::AdminError::NoSuchUser(_))),
        "{e:?}"
    );
}

#[tokio::test]
async fn sqlite_owner_or_admin() {
    owner_or_admin(spawn_app(TestBackend::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn mariadb_owner_or_admin() {
    if let Some(app) = spawn_app(TestBackend::MySql).await {
        owner_or_admin(app).await;
    }
}

#[tokio::test]
async fn postgres_owner_or_admin() {
    if let Some(app) = spawn_app(TestBackend::Postgres).await {
        owner_or_admin(app).await;
    }
}

/// With Redis as the session store, deleting a user removes their Redis
/// sessions (and the per-user index) and their database sessions (left from
/// before Redis was configured, say).
async fn deletion_revokes_both_stores(backend: TestBackend) {
    let Some(redis_url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let redis_url2 = redis_url.clone();
    let Some(app) = spawn_app_with(backend, |s| s.redis_url = Some(redis_url2.into())).await else {
        return;
    };
    let c = plain();
    let email = format!("both-{}@example.com", uuid::Uuid::new_v4().simple());
    let (id, t1) = sign_up_and_log_in(&c, &app.address, &email, "correct horse").await;
    let t2 = log_in(&c, &app.address, &email, "correct horse").await;
    let db_store = api::sessions::SessionStore::new(None, app.db.clone(), Duration::from_secs(60));
    db_store.create(id).await.unwrap();
    assert_eq!(db_sessions(&app.db, id).await, 1);

    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let keys = |t: &str| format!("session:{}", api::sessions::token_hash(t));
    let index = format!("user_sessions:{id}");
    for t in [&t1, &t2] {
        let v: Option<i64> = redis::cmd("GET")
            .arg(keys(t))
            .query_async(&mut r)
            .await
            .unwrap();
        assert_eq!(v, Some(id));
    }
    let members: i64 = redis::cmd("SCARD")
        .arg(&index)
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(members, 2);

    let user_url = app.url(&format!("/users/{id}"));
    assert_eq!(delete(&c, &user_url, &t1).await.status(), 204);
    for t in [&t1, &t2] {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(keys(t))
            .query_async(&mut r)
            .await
            .unwrap();
        assert_eq!(exists, 0, "redis session left");
        assert_problem(patch_name(&c, &user_url, t, "X").await, 401).await;
    }
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&index)
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(exists, 0, "user_sessions index left");
    assert_eq!(db_sessions(&app.db, id).await, 0, "database sessions left");
}

#[tokio::test]
async fn sqlite_deletion_revokes_redis_and_database_sessions() {
    deletion_revokes_both_stores(TestBackend::Sqlite).await;
}

#[tokio::test]
async fn mariadb_deletion_revokes_redis_and_database_sessions() {
    deletion_revokes_both_stores(TestBackend::MySql).await;
}

#[tokio::test]
async fn postgres_deletion_revokes_redis_and_database_sessions() {
    deletion_revokes_both_stores(TestBackend::Postgres).await;
}

/// `api users promote EMAIL` / `demote`: the real binary against a real
/// database; unknown and invalid addresses exit 1 naming the address.
#[tokio::test(flavor = "multi_thread")]
async fn users_promote_is_the_admin_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("admin.db").display());
    let mut server = BinaryApp::spawn(
        &["serve"],
        &[("DATABASE_URL", &url), ("PORT", "0")],
        dir.path(),
    );
    let c = plain();
    let base = server.url("");
    let (_, dan_tok) = sign_up_and_log_in(&c, &base, "dan@example.com", "dan's pass").await;
    let (eve, _) = sign_up_and_log_in(&c, &base, "eve@example.com", "eve's pass").await;
    let eve_url = format!("{base}/users/{eve}");
    assert_problem(patch_name(&c, &eve_url, &dan_tok, "E").await, 403).await;

    let run = |args: &[&str]| {
        let mut p = BinaryApp::spawn_process(args, &[("DATABASE_URL", &url)], dir.path());
        let st = p.wait_exit(Duration::from_secs(30));
        (st.success(), p.stderr_text(), p.records())
    };
    let (ok, _, records) = run(&["users", "promote", " Dan@Example.com "]);
    assert!(ok);
    assert!(
        records
            .iter()
            .any(|r| r["msg"] == "role set" && r["role"] == "admin"),
        "{records:?}"
    );
    assert_eq!(patch_name(&c, &eve_url, &dan_tok, "E").await.status(), 200);
    let (ok, _, _) = run(&["users", "demote", "dan@example.com"]);
    assert!(ok);
    assert_problem(patch_name(&c, &eve_url, &dan_tok, "E2").await, 403).await;
    for (email, expected) in [
        (
            "nobody@example.com",
            "no user with e-mail address nobody@example.com",
        ),
        ("not-an-address", "invalid e-mail address"),
    ] {
        let (ok, stderr, _) = run(&["users", "promote", email]);
        assert!(!ok, "{email}");
        assert!(stderr.contains(expected), "{email}: {stderr}");
    }
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}
