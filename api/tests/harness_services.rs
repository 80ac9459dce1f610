//! Harness check: the MariaDB, PostgreSQL and Redis that `scripts/test-services.sh start`
//! runs are reachable through the `TEST_*_URL` variables it prints, with the rights the
//! other integration tests rely on.
//!
//! Without a URL these tests skip (print a reason and return), unless
//! `REQUIRE_SERVICES=1` (set by `scripts/test.sh`), when they fail.

use std::future::Future;
use std::time::Duration;

use sqlx::{Connection, MySqlConnection, PgConnection, Row};

/// The URL in `var`; `None` means "skip this test". Panics if it is missing while
/// `REQUIRE_SERVICES=1`.
fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{var} is not set but REQUIRE_SERVICES=1 (start them: scripts/test-services.sh start)")
        }
        _ => {
            eprintln!(
                "skipping: {var} is not set (run scripts/test.sh to start the test services)"
            );
            None
        }
    }
}

/// Fails the test instead of hanging when a service does not answer.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 20 s"))
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn mysql_round_trips_a_value() {
    let Some(url) = service_url("TEST_MYSQL_URL") else {
        return;
    };
    let mut conn = within("connect to MariaDB", MySqlConnection::connect(&url))
        .await
        .expect("connect to TEST_MYSQL_URL");

    sqlx::query("CREATE TEMPORARY TABLE harness_rt (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL)")
        .execute(&mut conn)
        .await
        .expect("create temporary table");
    let value = unique("v");
    sqlx::query("INSERT INTO harness_rt (id, v) VALUES (?, ?)")
        .bind(1_i32)
        .bind(&value)
        .execute(&mut conn)
        .await
        .expect("insert");
    let row = sqlx::query("SELECT v FROM harness_rt WHERE id = ?")
        .bind(1_i32)
        .fetch_one(&mut conn)
        .await
        .expect("select");
    assert_eq!(row.get::<String, _>("v"), value);

    // The test user may create databases (tests may want one each).
    let db = unique("harness");
    sqlx::query(&format!("CREATE DATABASE `{db}`"))
        .execute(&mut conn)
        .await
        .expect("create database");
    sqlx::query(&format!("DROP DATABASE `{db}`"))
        .execute(&mut conn)
        .await
        .expect("drop database");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn postgres_round_trips_a_value() {
    let Some(url) = service_url("TEST_POSTGRES_URL") else {
        return;
    };
    let mut conn = within("connect to PostgreSQL", PgConnection::connect(&url))
        .await
        .expect("connect to TEST_POSTGRES_URL");

    sqlx::query("CREATE TEMPORARY TABLE harness_rt (id INT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .expect("create temporary table");
    let value = unique("v");
    sqlx::query("INSERT INTO harness_rt (id, v) VALUES ($1, $2)")
        .bind(1_i32)
        .bind(&value)
        .execute(&mut conn)
        .await
        .expect("insert");
    let row = sqlx::query("SELECT v FROM harness_rt WHERE id = $1")
        .bind(1_i32)
        .fetch_one(&mut conn)
        .await
        .expect("select");
    assert_eq!(row.get::<String, _>("v"), value);

    // The test role has CREATEDB.
    let db = unique("harness");
    sqlx::query(&format!("CREATE DATABASE \"{db}\""))
        .execute(&mut conn)
        .await
        .expect("create database");
    sqlx::query(&format!("DROP DATABASE \"{db}\""))
        .execute(&mut conn)
        .await
        .expect("drop database");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn redis_set_get_with_expiry() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let client = redis::Client::open(url.as_str()).expect("parse TEST_REDIS_URL");
    let mut conn = within(
        "connect to Redis",
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("connect to TEST_REDIS_URL");

    let key = unique("harness");
    let value = unique("v");
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .expect("SET EX");
    let got: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(got.as_deref(), Some(value.as_str()));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("TTL");
    assert!(
        (1..=60).contains(&ttl),
        "TTL of a key set with EX 60 is {ttl}"
    );
    let deleted: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    assert_eq!(deleted, 1);
}
