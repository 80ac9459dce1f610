//! Rate limit of log-in attempts (`POST /sessions`), per e-mail address and
//! per client address.
//!
//! Algorithm: fixed windows of `LOGIN_LIMIT_WINDOW` aligned on the epoch.
//! Every attempt increments two counters of the current window *before* the
//! password is checked — one for the e-mail address, one for the client
//! address ([`crate::client_addr`]) — so parallel guesses cannot slip through
//! between a check and an update, and a limited attempt costs no argon2 work.
//! An attempt that takes either counter past its limit is refused with 429
//! and `Retry-After` = the seconds left in the window. A successful log-in
//! clears its e-mail counter (the address counter keeps counting).
//!
//! Where the counters live decides who shares them: in Redis when
//! `REDIS_URL` is set (`INCR` + `PEXPIREAT` in one atomic pipeline, keys
//! `login_limit:<bucket>:<window start>`), otherwise in the database table
//! `login_attempts` (an upsert per counter; the `purge` cron task deletes
//! windows older than a day). Either way every `api serve` process of a
//! deployment counts into the same place, so the limit holds across
//! processes. The e-mail bucket is the SHA-256 of the normalised address, so
//! the table and Redis hold no e-mail addresses.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::client_addr::limit_key;
use crate::config::LoginLimitSettings;
use crate::db::{dispatch, now_ms, Db, DbError};
use crate::redis_conn::{Redis, RedisUnavailable};

/// The longest accepted `LOGIN_LIMIT_WINDOW` (the purge task keeps a day).
pub const MAX_WINDOW: Duration = Duration::from_secs(86_400);

/// Why the limiter could not decide.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] RedisUnavailable),
}

/// Counts log-in attempts where every process of the deployment sees them.
#[derive(Debug, Clone)]
pub struct LoginLimiter {
    settings: LoginLimitSettings,
    redis: Option<Redis>,
    db: Db,
}

/// The counter names of one attempt.
fn buckets(email: &str, client: IpAddr) -> (String, String) {
    let digest = Sha256::digest(email.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    (
        format!("email:{hex}"),
        format!("addr:{}", limit_key(client)),
    )
}

impl LoginLimiter {
    /// A limiter counting in Redis when given, else in the database.
    pub fn new(settings: LoginLimitSettings, redis: Option<Redis>, db: Db) -> Self {
        Self {
            settings,
            redis,
            db,
        }
    }

    fn window_ms(&self) -> i64 {
        self.settings.window.as_millis().max(1) as i64
    }

    /// Count one attempt for `email` (normalised) from `client`. `Ok(None)`:
    /// go ahead; `Ok(Some(d))`: refused, retry after `d` (whole seconds, ≥ 1).
    pub async fn attempt(
        &self,
        email: &str,
        client: IpAddr,
    ) -> Result<Option<Duration>, LimitError> {
        let LoginLimitSettings {
            per_email,
            per_address,
            ..
        } = self.settings;
        if per_email == 0 && per_address == 0 {
            return Ok(None);
        }
        let now = now_ms();
        let window = self.window_ms();
        let start = now - now.rem_euclid(window);
        let (email_bucket, addr_bucket) = buckets(email, client);
        let (by_email, by_addr) = match &self.redis {
            Some(redis) => {
                let expire_at = start + window + 1000;
                let (e, a): (i64, i64) = redis
                    .query_pipe(
                        redis::pipe()
                            .atomic()
                            .incr(format!("login_limit:{email_bucket}:{start}"), 1)
                            .pexpire_at(format!("login_limit:{email_bucket}:{start}"), expire_at)
                            .ignore()
                            .incr(format!("login_limit:{addr_bucket}:{start}"), 1)
                            .pexpire_at(format!("login_limit:{addr_bucket}:{start}"), expire_at)
                            .ignore(),
                    )
                    .await?;
                (e, a)
            }
            None => (
                self.db_increment(&email_bucket, start).await?,
                self.db_increment(&addr_bucket, start).await?,
            ),
        };
        let over = |count: i64, limit: u32| limit > 0 && count > i64::from(limit);
        if over(by_email, per_email) || over(by_addr, per_address) {
            let left_ms = (start + window - now).max(1) as u64;
            Ok(Some(Duration::from_secs(left_ms.div_ceil(1000))))
        } else {
            Ok(None)
        }
    }

    /// Forget the e-mail counter after a successful log-in.
    pub async fn clear_email(&self, email: &str) -> Result<(), LimitError> {
        let (email_bucket, _) = buckets(email, IpAddr::from([0, 0, 0, 0]));
        match &self.redis {
            Some(redis) => {
                let now = now_ms();
                let start = now - now.rem_euclid(self.window_ms());
                let _: i64 = redis
                    .query(redis::cmd("DEL").arg(format!("login_limit:{email_bucket}:{start}")))
                    .await?;
            }
            None => {
                let db = &self.db;
                let sql = format!("DELETE FROM login_attempts WHERE bucket = {}", db.ph(1));
                dispatch!(db, p => sqlx::query(&sql)
                    .bind(&email_bucket)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .map_err(DbError::from)?);
            }
        }
        Ok(())
    }

    /// Add one to a database counter and return its new value.
    async fn db_increment(&self, bucket: &str, start: i64) -> Result<i64, DbError> {
        Ok(match &self.db {
            Db::MySql(p) => {
                // MariaDB/MySQL have no RETURNING on upserts: increment and
                // read back inside one transaction (the row stays locked).
                let mut tx = p.begin().await?;
                sqlx::query(
                    "INSERT INTO login_attempts (bucket, window_start, attempts) VALUES (?, ?, 1) \
                     ON DUPLICATE KEY UPDATE attempts = attempts + 1",
                )
                .bind(bucket)
                .bind(start)
                .execute(&mut *tx)
                .await?;
                let n: i64 = sqlx::query_scalar(
                    "SELECT attempts FROM login_attempts WHERE bucket = ? AND window_start = ?",
                )
                .bind(bucket)
                .bind(start)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                n
            }
            db => {
                let sql = format!(
                    "INSERT INTO login_attempts (bucket, window_start, attempts) VALUES ({}, {}, 1) \
                     ON CONFLICT (bucket, window_start) \
                     DO UPDATE SET attempts = login_attempts.attempts + 1 RETURNING attempts",
                    db.ph(1),
                    db.ph(2)
                );
                dispatch!(db, p => sqlx::query_scalar::<_, i64>(&sql)
                    .bind(bucket)
                    .bind(start)
                    .fetch_one(p)
                    .await?)
            }
        })
    }
}

/// Delete database counters of windows that started before `before_ms`;
/// returns rows deleted.
pub async fn purge_windows(db: &Db, before_ms: i64) -> Result<u64, DbError> {
    let sql = format!(
        "DELETE FROM login_attempts WHERE window_start < {}",
        db.ph(1)
    );
    Ok(dispatch!(db, p => sqlx::query(&sql)
        .bind(before_ms)
        .execute(p)
        .await?
        .rows_affected()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_no_email_address() {
        let (e, a) = buckets("ada@example.com", "192.0.2.1".parse().unwrap());
        assert!(e.starts_with("email:") && !e.contains("ada"));
        assert_eq!(e.len(), "email:".len() + 32);
        assert_eq!(a, "addr:192.0.2.1");
        let (v6, _) = buckets("x@example.com", "2001:db8::1".parse().unwrap());
        assert_ne!(v6, e);
    }
}
