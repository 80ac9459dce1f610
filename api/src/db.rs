//! Database access (12-factor, factor IV: backing services are attached
//! resources selected by URL).
//!
//! # Design: an enum over three concrete pools, not `sqlx::Any`
//!
//! [`Db`] is `enum { MySql(MySqlPool), Postgres(PgPool), Sqlite(SqlitePool) }`
//! and every repository method `match`es on it (via the `dispatch!` macro,
//! which type-checks the same body once per concrete pool). We chose this
//! over `sqlx::Any` because:
//!
//! * `Any` only maps a common subset of types: no `chrono` timestamps, and
//!   booleans/integers differ per driver, so `created_at`/`updated_at` would
//!   have to be strings; the enum keeps each driver's native type mapping
//!   (`DATETIME(6)`, `TIMESTAMPTZ`, SQLite text) decoding to `DateTime<Utc>`.
//! * Each backend may use its own SQL where it matters: placeholders (`?` vs
//!   `$1`), `RETURNING` (PostgreSQL/SQLite) vs `LAST_INSERT_ID()` (MySQL).
//! * Driver-specific connect options (SQLite `create_if_missing`, WAL mode,
//!   busy timeout) stay typed instead of being smuggled through a URL.
//!
//! Handlers still have one code path: they call `db.get_user(id)` and never
//! see the backend. Only runtime `sqlx::query`/`query_as` are used (the
//! `query!` macros would need a live database at compile time).
//!
//! # Availability guarantee
//!
//! Pools are created lazily (`connect_lazy_with`): the service starts while
//! the database is down, and recovers by itself when it comes back (dead
//! connections fail their ping or query and are replaced). Acquiring a
//! connection is bounded by `DATABASE_CONNECT_TIMEOUT`, so requests fail fast
//! with [`DbError::Unavailable`] (→ 503) instead of hanging.
//!
//! # Migrations
//!
//! Each backend has its own migration directory (`api/migrations/{mysql,
//! postgres,sqlite}`), embedded into the binary at compile time and applied by
//! `api migrate` (or at start-up when `AUTO_MIGRATE` is true, the default only
//! for SQLite).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};
use sqlx::{Connection, FromRow, QueryBuilder};
use utoipa::ToSchema;

use crate::authz::Role;
use crate::config::{Backend, DatabaseSettings};

static MYSQL_MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Column list shared by all SELECTs.
const COLUMNS: &str = "id, name, email, created_at, updated_at";

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow, ToSchema)]
pub struct User {
    /// Server-assigned identifier (monotonically increasing).
    pub id: i64,
    /// Display name, 1–100 characters.
    pub name: String,
    /// Unique, lower-cased e-mail address.
    pub email: String,
    /// Creation time (UTC).
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Last modification time (UTC).
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// The same RFC 3339 text as chrono's `Serialize` (`…T10:50:35.034350Z`),
/// at a seventh of its cost: chrono's impl goes through `fmt::Display` and
/// serde_json's char-by-char `collect_str` (~2,700 instructions per
/// timestamp, callgrind), `to_rfc3339_opts` writes digits directly.
fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// Repository errors, independent of the backend.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No row with that id.
    #[error("not found")]
    NotFound,
    /// The e-mail unique constraint was violated.
    #[error("duplicate email")]
    DuplicateEmail,
    /// The database could not be reached in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::DuplicateEmail,
            // SQLSTATE class 08 (connection exception) and 57P01-57P03
            // (server shutting down / starting up): the database went away.
            sqlx::Error::Database(d)
                if d.code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
            {
                DbError::Unavailable(e.to_string())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(e.to_string()),
            _ => DbError::Other(e.to_string()),
        }
    }
}

/// Errors from connecting or migrating.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URL could not be parsed by the driver.
    #[error("invalid database URL {url}: {source}")]
    Url {
        /// Redacted URL.
        url: String,
        /// Driver error.
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A pool for one of the supported backends.
#[derive(Debug, Clone)]
pub enum Db {
    /// MySQL / MariaDB.
    MySql(MySqlPool),
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// Pool options shared by all backends.
///
/// `test_before_acquire` (a ping round trip on *every* checkout) is replaced
/// by a ping only for connections idle longer than [`PING_IF_IDLE_FOR`]: busy
/// connections are known-good, and a connection that died under load fails
/// its query (→ 503) and is discarded, so the pool still heals by itself.
fn pool_options<DB: sqlx::Database>(max: u32, acquire: Duration) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(max)
        .acquire_timeout(acquire)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Connections idle at least this long are pinged before use.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Run the same body against whichever pool is inside a [`Db`].
macro_rules! dispatch {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::MySql($pool) => $body,
            Db::Postgres($pool) => $body,
            Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use dispatch;

impl Db {
    /// Create a lazy pool: no connection is attempted until first use.
    pub fn connect_lazy(s: &DatabaseSettings) -> Result<Self, SetupError> {
        let url_err = |source| SetupError::Url {
            url: s.redacted_url(),
            source,
        };
        let max = s.max_connections;
        let acquire = s.connect_timeout;
        Ok(match s.backend {
            Backend::MySql => {
                let opts = MySqlConnectOptions::from_str(&s.url).map_err(url_err)?;
                Db::MySql(pool_options::<sqlx::MySql>(max, acquire).connect_lazy_with(opts))
            }
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(&s.url).map_err(url_err)?;
                Db::Postgres(pool_options::<sqlx::Postgres>(max, acquire).connect_lazy_with(opts))
            }
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(&s.url)
                    .map_err(url_err)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5));
                Db::Sqlite(pool_options::<sqlx::Sqlite>(max, acquire).connect_lazy_with(opts))
            }
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::MySql(_) => Backend::MySql,
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Apply the embedded migrations for this backend.
    pub async fn migrate(&self) -> Result<(), SetupError> {
        match self {
            Db::MySql(p) => MYSQL_MIGRATOR.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
            Db::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// Check that a connection can be acquired and used within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), DbError> {
        let fut =
            async { dispatch!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ())) };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.map_err(|e| DbError::Unavailable(e.to_string())),
            Err(_) => Err(DbError::Unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// Close the pool, waiting for checked-out connections to be returned.
    pub async fn close(&self) {
        dispatch!(self, p => p.close().await)
    }

    /// Placeholder `n` (1-based) in this backend's syntax.
    pub(crate) fn ph(&self, n: usize) -> String {
        match self {
            Db::Postgres(_) => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    /// Users with `id > after`, ascending, at most `limit` rows.
    pub async fn list_users(&self, after: i64, limit: i64) -> Result<Vec<User>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE id > {} ORDER BY id LIMIT {}",
            self.ph(1),
            self.ph(2)
        );
        Ok(dispatch!(self, p => sqlx::query_as::<_, User>(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?))
    }

    /// The user with this id.
    pub async fn get_user(&self, id: i64) -> Result<User, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = {}", self.ph(1));
        let row = dispatch!(self, p => sqlx::query_as::<_, User>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        row.ok_or(DbError::NotFound)
    }

    /// Id and password hash (if any) of the user with this (normalised) email.
    pub async fn get_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(i64, Option<String>)>, DbError> {
        let sql = format!(
            "SELECT id, password_hash FROM users WHERE email = {}",
            self.ph(1)
        );
        Ok(
            dispatch!(self, p => sqlx::query_as::<_, (i64, Option<String>)>(&sql)
            .bind(email)
            .fetch_optional(p)
            .await?),
        )
    }

    /// Insert a user (name and email already validated; `password_hash` is
    /// an argon2id PHC string or `None`).
    pub async fn create_user(
        &self,
        name: &str,
        email: &str,
        password_hash: Option<&str>,
    ) -> Result<User, DbError> {
        let now = now();
        match self {
            Db::MySql(p) => {
                let res = sqlx::query(
                    "INSERT INTO users (name, email, created_at, updated_at, password_hash) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(name)
                .bind(email)
                .bind(now)
                .bind(now)
                .bind(password_hash)
                .execute(p)
                .await?;
                let id = i64::try_from(res.last_insert_id())
                    .map_err(|e| DbError::Other(e.to_string()))?;
                Ok(User {
                    id,
                    name: name.to_owned(),
                    email: email.to_owned(),
                    created_at: now,
                    updated_at: now,
                })
            }
            _ => {
                let sql = format!(
                    "INSERT INTO users (name, email, created_at, updated_at, password_hash) \
                     VALUES ({}, {}, {}, {}, {}) RETURNING {COLUMNS}",
                    self.ph(1),
                    self.ph(2),
                    self.ph(3),
                    self.ph(4),
                    self.ph(5)
                );
                match self {
                    Db::Postgres(p) => Ok(sqlx::query_as::<_, User>(&sql)
                        .bind(name)
                        .bind(email)
                        .bind(now)
                        .bind(now)
                        .bind(password_hash)
                        .fetch_one(p)
                        .await?),
                    Db::Sqlite(p) => Ok(sqlx::query_as::<_, User>(&sql)
                        .bind(name)
                        .bind(email)
                        .bind(now)
                        .bind(now)
                        .bind(password_hash)
                        .fetch_one(p)
                        .await?),
                    Db::MySql(_) => unreachable!("handled above"),
                }
            }
        }
    }

    /// Change name and/or email; `None` leaves a field unchanged.
    pub async fn update_user(
        &self,
        id: i64,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, DbError> {
        if name.is_none() && email.is_none() {
            return self.get_user(id).await;
        }
        let now = now();
        let mut sets = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            self.ph(n)
        };
        if name.is_some() {
            sets.push(format!("name = {}", next()));
        }
        if email.is_some() {
            sets.push(format!("email = {}", next()));
        }
        sets.push(format!("updated_at = {}", next()));
        let sql = format!("UPDATE users SET {} WHERE id = {}", sets.join(", "), next());
        dispatch!(self, p => {
            let mut q = sqlx::query(&sql);
            if let Some(v) = name {
                q = q.bind(v);
            }
            if let Some(v) = email {
                q = q.bind(v);
            }
            q.bind(now).bind(id).execute(p).await?;
        });
        // MySQL reports 0 affected rows when nothing changed, so an absent
        // row is detected by reading it back rather than by `rows_affected`.
        self.get_user(id).await
    }

    /// Delete a user and all of their database sessions in one transaction;
    /// `NotFound` if there was no such user.
    pub async fn delete_user(&self, id: i64) -> Result<(), DbError> {
        let sessions = format!("DELETE FROM sessions WHERE user_id = {}", self.ph(1));
        let user = format!("DELETE FROM users WHERE id = {}", self.ph(1));
        let affected = dispatch!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(&sessions).bind(id).execute(&mut *tx).await?;
            let n = sqlx::query(&user).bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        });
        if affected == 0 {
            Err(DbError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Delete every database session of a user; returns rows deleted.
    pub async fn delete_user_sessions(&self, user_id: i64) -> Result<u64, DbError> {
        let sql = format!("DELETE FROM sessions WHERE user_id = {}", self.ph(1));
        Ok(dispatch!(self, p => sqlx::query(&sql)
            .bind(user_id)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// The stored role of a user, or `None` if there is no such user.
    pub async fn user_role(&self, id: i64) -> Result<Option<String>, DbError> {
        let sql = format!("SELECT role FROM users WHERE id = {}", self.ph(1));
        Ok(dispatch!(self, p => sqlx::query_scalar::<_, String>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?))
    }

    /// Set the role of the user with this (normalised) e-mail; returns the
    /// user's id, or `NotFound`.
    pub async fn set_role(&self, email: &str, role: Role) -> Result<i64, DbError> {
        let update = format!(
            "UPDATE users SET role = {}, updated_at = {} WHERE email = {}",
            self.ph(1),
            self.ph(2),
            self.ph(3)
        );
        let now = now();
        dispatch!(self, p => sqlx::query(&update)
            .bind(role.as_str())
            .bind(now)
            .bind(email)
            .execute(p)
            .await
            .map(|_| ())?);
        // Read back rather than trusting rows_affected (MySQL counts only
        // rows that changed).
        match self.get_credentials(email).await? {
            Some((id, _)) => Ok(id),
            None => Err(DbError::NotFound),
        }
    }

    /// Insert many users in one multi-row statement.
    pub async fn insert_batch(&self, users: &[(String, String)]) -> Result<u64, DbError> {
        if users.is_empty() {
            return Ok(0);
        }
        let now = now();
        Ok(dispatch!(self, p => {
            let mut qb = QueryBuilder::new("INSERT INTO users (name, email, created_at, updated_at) ");
            qb.push_values(users, |mut b, (name, email)| {
                b.push_bind(name).push_bind(email).push_bind(now).push_bind(now);
            });
            qb.build().execute(p).await?.rows_affected()
        }))
    }

    /// Number of users.
    pub async fn count_users(&self) -> Result<i64, DbError> {
        Ok(
            dispatch!(self, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
            .fetch_one(p)
            .await?),
        )
    }
}

/// Milliseconds since the Unix epoch (the time type of sessions, jobs and
/// cron leases on every backend).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Current time truncated to microseconds (the precision all backends store).
fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Current time truncated to microseconds, for other modules' user rows.
pub(crate) fn now_micros() -> DateTime<Utc> {
    now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_serialize_as_chrono_does() {
        for micros in [0, 1, 34_350, 999_999, 500_000] {
            let t = DateTime::from_timestamp(1_795_000_000, micros * 1000).unwrap();
            let u = User {
                id: 1,
                name: "n".into(),
                email: "e@example.com".into(),
                created_at: t,
                updated_at: t,
            };
            let ours = serde_json::to_value(&u).unwrap();
            assert_eq!(
                ours["created_at"],
                serde_json::to_value(t).unwrap(),
                "{micros}"
            );
        }
    }
}
