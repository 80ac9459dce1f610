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
//! Redis is reached through a [`ConnectionManager`] (reconnects by itself)
//! created lazily and bounded by short timeouts, so while Redis is down
//! authenticated calls fail fast with 503 and recover when it returns.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::db::{dispatch, now_ms, Db, DbError};

/// Upper bound of one Redis round trip (connect or command).
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

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

/// A newly issued session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The bearer token (returned to the client once, never stored).
    pub token: String,
    /// Expiry, milliseconds since the epoch.
    pub expires_at_ms: i64,
}

/// Where sessions live.
#[derive(Clone)]
pub enum SessionStore {
    /// Redis (`REDIS_URL`).
    Redis {
        /// Parsed client.
        client: redis::Client,
        /// Lazily created, self-reconnecting connection.
        conn: std::sync::Arc<OnceCell<ConnectionManager>>,
        /// Session lifetime.
        ttl: Duration,
    },
    /// The `sessions` table.
    Db {
        /// The database.
        db: Db,
        /// Session lifetime.
        ttl: Duration,
    },
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionStore::Redis { ttl, .. } => write!(f, "SessionStore::Redis(ttl={ttl:?})"),
            SessionStore::Db { ttl, .. } => write!(f, "SessionStore::Db(ttl={ttl:?})"),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> SessionError {
    SessionError::Unavailable(e.to_string())
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

impl SessionStore {
    /// Redis store when `redis_url` is set, else the database.
    pub fn new(redis_url: Option<&str>, db: Db, ttl: Duration) -> Result<Self, SessionError> {
        Ok(match redis_url {
            Some(url) => SessionStore::Redis {
                client: redis::Client::open(url).map_err(|e| SessionError::Other(e.to_string()))?,
                conn: Default::default(),
                ttl,
            },
            None => SessionStore::Db { db, ttl },
        })
    }

    /// `redis` or `database`.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionStore::Redis { .. } => "redis",
            SessionStore::Db { .. } => "database",
        }
    }

    async fn redis(&self) -> Result<ConnectionManager, SessionError> {
        let SessionStore::Redis { client, conn, .. } = self else {
            return Err(SessionError::Other("not a redis store".into()));
        };
        let c = conn
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(REDIS_TIMEOUT)
                    .set_response_timeout(REDIS_TIMEOUT)
                    .set_number_of_retries(1)
                    .set_max_delay(1000);
                tokio::time::timeout(
                    REDIS_TIMEOUT * 2,
                    ConnectionManager::new_with_config(client.clone(), cfg),
                )
                .await
                .map_err(|_| unavailable("redis connect timed out"))?
                .map_err(unavailable)
            })
            .await?;
        Ok(c.clone())
    }

    async fn redis_cmd<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, SessionError> {
        let mut c = self.redis().await?;
        tokio::time::timeout(REDIS_TIMEOUT * 2, cmd.query_async::<T>(&mut c))
            .await
            .map_err(|_| unavailable("redis command timed out"))?
            .map_err(unavailable)
    }

    /// Issue a session for `user_id`.
    pub async fn create(&self, user_id: i64) -> Result<NewSession, SessionError> {
        let token = new_token();
        let hash = token_hash(&token);
        let now = now_ms();
        match self {
            SessionStore::Redis { ttl, .. } => {
                let ms = ttl.as_millis() as u64;
                let () = self
                    .redis_cmd(
                        redis::cmd("SET")
                            .arg(format!("session:{hash}"))
                            .arg(user_id)
                            .arg("PX")
                            .arg(ms),
                    )
                    .await?;
                Ok(NewSession {
                    token,
                    expires_at_ms: now + ms as i64,
                })
            }
            SessionStore::Db { db, ttl } => {
                let expires = now + ttl.as_millis() as i64;
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
                    .bind(expires)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .map_err(DbError::from)?);
                Ok(NewSession {
                    token,
                    expires_at_ms: expires,
                })
            }
        }
    }

    /// The user id of a valid (unexpired, unrevoked) token, else `None`.
    pub async fn validate(&self, token: &str) -> Result<Option<i64>, SessionError> {
        let hash = token_hash(token);
        match self {
            SessionStore::Redis { .. } => {
                self.redis_cmd::<Option<i64>>(redis::cmd("GET").arg(format!("session:{hash}")))
                    .await
            }
            SessionStore::Db { db, .. } => {
                let sql = format!(
                    "SELECT user_id FROM sessions WHERE token_hash = {} AND expires_at > {}",
                    db.ph(1),
                    db.ph(2)
                );
                Ok(dispatch!(db, p => sqlx::query_scalar::<_, i64>(&sql)
                    .bind(&hash)
                    .bind(now_ms())
                    .fetch_optional(p)
                    .await
                    .map_err(DbError::from)?))
            }
        }
    }

    /// Revoke a token (no-op if unknown).
    pub async fn revoke(&self, token: &str) -> Result<(), SessionError> {
        let hash = token_hash(token);
        match self {
            SessionStore::Redis { .. } => {
                let _: i64 = self
                    .redis_cmd(redis::cmd("DEL").arg(format!("session:{hash}")))
                    .await?;
            }
            SessionStore::Db { db, .. } => {
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
