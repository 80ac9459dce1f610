//! The connection pool (`api::pool`) against the real databases: a finished
//! connection goes straight back (no ping), while a connection abandoned
//! mid-transaction or mid-query is settled before anyone reuses it. On
//! SQLite, MariaDB and PostgreSQL (the cancelled-query case only where the
//! server can be kept busy: MariaDB and PostgreSQL).

use std::time::{Duration, Instant};

use api::db::Db;
use sqlx::Connection;

use crate::helpers::{fresh_database, TestBackend};

/// A migrated database whose pool holds one connection, so that every
/// checkout gets the same connection back.
async fn one_connection_db(
    backend: TestBackend,
) -> Option<(Db, String, Option<tempfile::TempDir>)> {
    let (mut settings, dir) = fresh_database(backend).await?;
    settings.max_connections = 1;
    settings.connect_timeout = Duration::from_secs(10);
    let db = Db::connect_lazy(&settings).expect("pool");
    db.migrate().await.expect("migrate");
    Some((db, settings.url, dir))
}

/// Seen from another connection: is a transaction open on server connection `id`?
async fn transaction_open_on(url: &str, backend: TestBackend, id: i64) -> bool {
    match backend {
        TestBackend::MySql => {
            let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ?",
            )
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap();
            n > 0
        }
        TestBackend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1 AND state LIKE 'idle in transaction%'",
            )
            .bind(id as i32)
            .fetch_one(&mut c)
            .await
            .unwrap();
            n > 0
        }
        TestBackend::Sqlite => false,
    }
}

/// Run `$body` with `$c`, a `PooledConn` of whichever backend `$db` is.
macro_rules! with_pooled {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            Db::MySql(p) => {
                let mut $c = p.acquire().await.expect("acquire");
                $body
            }
            Db::Postgres(p) => {
                let mut $c = p.acquire().await.expect("acquire");
                $body
            }
            Db::Sqlite(p) => {
                let mut $c = p.acquire().await.expect("acquire");
                $body
            }
        }
    };
}

/// The server's id of the pooled connection (None on SQLite, which has no server).
async fn backend_id(db: &Db) -> Option<i64> {
    match db {
        Db::MySql(p) => {
            let mut c = p.acquire().await.expect("acquire");
            let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                .fetch_one(&mut *c)
                .await
                .unwrap();
            c.finish().await;
            Some(id as i64)
        }
        Db::Postgres(p) => {
            let mut c = p.acquire().await.expect("acquire");
            let id: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *c)
                .await
                .unwrap();
            c.finish().await;
            Some(id.into())
        }
        Db::Sqlite(_) => None,
    }
}

async fn wait_idle(db: &Db, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.idle_connections() != n {
        assert!(
            Instant::now() < deadline,
            "pool never had {n} idle connection(s)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn finished_connection_comes_back_at_once(backend: TestBackend) {
    let Some((db, _url, _dir)) = one_connection_db(backend).await else {
        return;
    };
    let id = backend_id(&db).await;
    db.insert_batch(&[
        ("A".into(), "a@example.com".into()),
        ("B".into(), "b@example.com".into()),
    ])
    .await
    .unwrap();
    // fetch_optional stops reading at the first row: `finish` drains the rest.
    with_pooled!(&db, c => {
        let first: Option<i64> = sqlx::query_scalar("SELECT id FROM users ORDER BY id")
            .fetch_optional(&mut *c)
            .await
            .unwrap();
        assert!(first.is_some());
        c.finish().await;
    });
    // Back on the idle list synchronously: no ping on the way back.
    assert_eq!(db.idle_connections(), 1);
    assert_eq!(
        db.count_users().await.unwrap(),
        2,
        "the next query reads its own result"
    );
    assert_eq!(backend_id(&db).await, id, "the same connection was reused");
    db.close().await;
}

async fn unfinished_transaction_is_rolled_back_before_reuse(backend: TestBackend) {
    let Some((db, url, _dir)) = one_connection_db(backend).await else {
        return;
    };
    let id = backend_id(&db).await;
    with_pooled!(&db, c => {
        let mut tx = c.begin().await.unwrap();
        sqlx::query("INSERT INTO users (name, email, created_at, updated_at) \
                     VALUES ('T', 't@example.com', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
            .execute(&mut *tx)
            .await
            .unwrap();
        // Dropped without commit, the connection not finished (as when a
        // handler returns early with an error).
        drop(tx);
    });
    // The single connection is back only after its settling ping, which
    // sent the rollback: no transaction is left open on the server while the
    // connection sits idle (its locks are released).
    wait_idle(&db, 1).await;
    if let Some(id) = id {
        assert!(!transaction_open_on(&url, backend, id).await);
    }
    with_pooled!(&db, c => {
        assert!(!c.is_in_transaction());
        c.finish().await;
    });
    assert_eq!(
        db.count_users().await.unwrap(),
        0,
        "the insert was rolled back"
    );
    assert_eq!(backend_id(&db).await, id, "the same connection was reused");
    db.close().await;
}

async fn cancelled_query_is_not_reused_mid_result(backend: TestBackend) {
    let Some((db, _url, _dir)) = one_connection_db(backend).await else {
        return;
    };
    let id = backend_id(&db).await;
    let sleep = match backend {
        TestBackend::MySql => "SELECT SLEEP(1)",
        _ => "SELECT pg_sleep(1)::text",
    };
    let forty_two = match backend {
        TestBackend::Postgres => "SELECT 42::int8",
        _ => "SELECT 42",
    };
    with_pooled!(&db, c => {
        // The request is cancelled while the server is still working on it.
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            sqlx::query(sleep).execute(&mut *c),
        )
        .await;
        assert!(r.is_err(), "the query should still be running");
    });
    // The next user must get 42, not the abandoned query's result.
    with_pooled!(&db, c => {
        let v: i64 = sqlx::query_scalar(forty_two).fetch_one(&mut *c).await.unwrap();
        assert_eq!(v, 42);
        c.finish().await;
    });
    assert_eq!(backend_id(&db).await, id, "the same connection was reused");
    db.close().await;
}

macro_rules! on {
    ($backend:ident: $($name:ident),*) => {
        $( #[tokio::test] async fn $name() { super::$name(crate::helpers::TestBackend::$backend).await } )*
    };
}

mod sqlite {
    on!(Sqlite: finished_connection_comes_back_at_once, unfinished_transaction_is_rolled_back_before_reuse);
}
mod mariadb {
    on!(MySql: finished_connection_comes_back_at_once, unfinished_transaction_is_rolled_back_before_reuse,
        cancelled_query_is_not_reused_mid_result);
}
mod postgres {
    on!(Postgres: finished_connection_comes_back_at_once, unfinished_transaction_is_rolled_back_before_reuse,
        cancelled_query_is_not_reused_mid_result);
}
