//! Sessions and passwords (12-factor, factor VI: processes are stateless).
//!
//! Guarantee: no session state lives in the process. A session is created
//! by `POST /sessions` (email + password) and identified by an opaque token
//! (32 random bytes, base64url); only the SHA-256 of the token is stored —
//! in Redis (`SET session:<hash> <user_id> EX ttl`) when `REDIS_URL` is set,
//! otherwise in the database's `sessions` table — so any `api serve`
//! process accepts a token issued by any other, and a leaked store does not
//! leak usable tokens. Passwords are stored as argon2id PHC strings and are
//! never logged or returned.
//!
//! Redis is reached through the shared [`Redis`] handle (lazy, reconnecting,
//! bounded by short timeouts), so while Redis is down authenticated calls
//! fail fast with 503 and recover when it returns.
//!
//! Revocation guarantee: [`SessionStore::revoke_user`] deletes every session
//! of a user — in Redis each user's token hashes are indexed in the set
//! `user_sessions:<user_id>`, in the database by `sessions.user_id` — and
//! [`SessionStore::validate`] only accepts a token whose user row still
//! exists, so even a session created concurrently with the deletion
//! authorizes nothing.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::authz::{Principal, Role};
use crate::db::{dispatch, now_ms, Db, DbError};
use crate::redis_conn::{Redis, RedisUnavailable};

/// Session store errors.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store (Redis or the database) could not be reached.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// Any other failure.
    #[error("session store error: {0}")]
    Other(String),
}

impl From<DbError> for SessionError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(m) => SessionError::Unavailable(m),
            other => SessionError::Other(other.to_string()),
        }
    }
}

impl From<RedisUnavailable> for SessionError {
    fn from(e: RedisUnavailable) -> Self {
        SessionError::Unavailable(e.0)
    }
}

/// A newly issued session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The bearer token (returned to the client once, never stored).
    pub token: String,
    /// Expiry, milliseconds since the epoch.
    pub expires_at_ms: i64,
}

/// Where sessions live: Redis when configured, else the `sessions` table.
/// The database is always attached (roles live there, and it holds the
/// sessions of the database store).
#[derive(Clone)]
pub struct SessionStore {
    redis: Option<Redis>,
    db: Db,
    ttl: Duration,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionStore({}, ttl={:?})", self.kind(), self.ttl)
    }
}

/// SHA-256 of the token, lower-case hex: the only form that is stored.
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_key(hash: &str) -> String {
    format!("session:{hash}")
}

fn user_sessions_key(user_id: i64) -> String {
    format!("user_sessions:{user_id}")
}

impl SessionStore {
    /// Redis store when `redis` is given, else the database.
    pub fn new(redis: Option<Redis>, db: Db, ttl: Duration) -> Self {
        Self { redis, db, ttl }
    }

    /// `redis` or `database`.
    pub fn kind(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "database"
        }
    }

    /// Issue a session for `user_id`.
    pub async fn create(&self, user_id: i64) -> Result<NewSession, SessionError> {
        let token = new_token();
        let hash = token_hash(&token);
        let now = now_ms();
        let ttl_ms = self.ttl.as_millis() as i64;
        match &self.redis {
            Some(redis) => {
                // One atomic round trip: the session, and its entry in the
                // user's index (which lives as long as the newest session).
                let index = user_sessions_key(user_id);
                let () = redis
                    .query_pipe(
                        redis::pipe()
                            .atomic()
                            .cmd("SET")
                            .arg(session_key(&hash))
                            .arg(user_id)
                            .arg("PX")
                            .arg(ttl_ms)
                            .ignore()
                            .cmd("SADD")
                            .arg(&index)
                            .arg(&hash)
                            .ignore()
                            .cmd("PEXPIRE")
                            .arg(&index)
                            .arg(ttl_ms)
                            .ignore(),
                    )
                    .await?;
            }
            None => {
                let db = &self.db;
                let sql = format!(
                    "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
                     VALUES ({}, {}, {}, {})",
                    db.ph(1),
                    db.ph(2),
                    db.ph(3),
                    db.ph(4)
                );
                dispatch!(db, p => sqlx::query(&sql)
                    .bind(&hash)
                    .bind(user_id)
                    .bind(now)
                    .bind(now + ttl_ms)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .map_err(DbError::from)?);
            }
        }
        Ok(NewSession {
            token,
            expires_at_ms: now + ttl_ms,
        })
    }

    /// The caller behind a valid (unexpired, unrevoked) token whose user
    /// still exists, with the user's current role; else `None`.
    pub async fn validate(&self, token: &str) -> Result<Option<Principal>, SessionError> {
        let hash = token_hash(token);
        let db = &self.db;
        let row: Option<(i64, String)> = match &self.redis {
            Some(redis) => {
                let user_id: Option<i64> = redis
                    .query(redis::cmd("GET").arg(session_key(&hash)))
                    .await?;
                match user_id {
                    None => None,
                    Some(id) => db.user_role(id).await?.map(|r| (id, r)),
                }
            }
            None => {
                let sql = format!(
                    "SELECT s.user_id, u.role FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = {} AND s.expires_at > {}",
                    db.ph(1),
                    db.ph(2)
                );
                dispatch!(db, p => sqlx::query_as::<_, (i64, String)>(&sql)
                    .bind(&hash)
                    .bind(now_ms())
                    .fetch_optional(p)
                    .await
                    .map_err(DbError::from)?)
            }
        };
        Ok(row.map(|(user_id, role)| Principal {
            user_id,
            role: Role::from_db(&role),
        }))
    }

    /// Revoke a token (no-op if unknown).
    pub async fn revoke(&self, token: &str) -> Result<(), SessionError> {
        let hash = token_hash(token);
        match &self.redis {
            Some(redis) => {
                let _: i64 = redis
                    .query(redis::cmd("DEL").arg(session_key(&hash)))
                    .await?;
            }
            None => {
                let db = &self.db;
                let sql = format!("DELETE FROM sessions WHERE token_hash = {}", db.ph(1));
                dispatch!(db, p => sqlx::query(&sql)
                    .bind(&hash)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .map_err(DbError::from)?);
            }
        }
        Ok(())
    }

    /// Revoke every session of `user_id` in both stores: the Redis ones (if
    /// Redis is configured) and the database rows. Returns how many were
    /// revoked.
    pub async fn revoke_user(&self, user_id: i64) -> Result<u64, SessionError> {
        let mut revoked = 0;
        if let Some(redis) = &self.redis {
            let index = user_sessions_key(user_id);
            let hashes: Vec<String> = redis.query(redis::cmd("SMEMBERS").arg(&index)).await?;
            let mut del = redis::cmd("DEL");
            del.arg(&index);
            for h in &hashes {
                del.arg(session_key(h));
            }
            let deleted: u64 = redis.query(&del).await?;
            revoked += deleted.saturating_sub(1);
        }
        revoked += self.db.delete_user_sessions(user_id).await?;
        Ok(revoked)
    }
}

/// Delete expired rows of the database session store; returns rows deleted.
pub async fn purge_expired(db: &Db) -> Result<u64, DbError> {
    let sql = format!("DELETE FROM sessions WHERE expires_at <= {}", db.ph(1));
    Ok(dispatch!(db, p => sqlx::query(&sql)
        .bind(now_ms())
        .execute(p)
        .await?
        .rows_affected()))
}

/// Hash a password with argon2id (random salt, default parameters), on a
/// blocking thread.
pub async fn hash_password(password: String) -> Result<String, SessionError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| SessionError::Other(e.to_string()))
    })
    .await
    .map_err(|e| SessionError::Other(e.to_string()))?
}

/// Check a password against a stored PHC string, on a blocking thread.
pub async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_random_bytes_base64url() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[tokio::test]
    async fn password_round_trip() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), h.clone()).await);
        assert!(!verify_password("wrong horse".into(), h).await);
    }
}
