//! The Redis connection shared by the session store and the login limiter.
//!
//! Guarantee: one [`Redis`] per process (cloned into every user) holds one
//! lazily created, self-reconnecting [`ConnectionManager`]. Every connect and
//! every command is bounded by [`REDIS_TIMEOUT`] (twice, counting the
//! manager's own retry), so while Redis is down callers get
//! [`RedisUnavailable`] (→ 503) within about a second, and the same process
//! recovers by itself when Redis returns.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// Upper bound of one Redis round trip (connect or command).
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Redis could not be reached, or a command failed.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct RedisUnavailable(pub String);

/// A Redis client with a lazily created, shared connection.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: Arc<OnceCell<ConnectionManager>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the URL, which may contain a password.
        f.write_str("Redis")
    }
}

fn unavailable(e: impl std::fmt::Display) -> RedisUnavailable {
    RedisUnavailable(e.to_string())
}

impl Redis {
    /// Parse the URL; nothing is connected until the first command.
    pub fn open(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: Default::default(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisUnavailable> {
        let c = self
            .conn
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(REDIS_TIMEOUT)
                    .set_response_timeout(REDIS_TIMEOUT)
                    .set_number_of_retries(1)
                    .set_max_delay(1000);
                tokio::time::timeout(
                    REDIS_TIMEOUT * 2,
                    ConnectionManager::new_with_config(self.client.clone(), cfg),
                )
                .await
                .map_err(|_| unavailable("redis connect timed out"))?
                .map_err(unavailable)
            })
            .await?;
        Ok(c.clone())
    }

    /// Run one command.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisUnavailable> {
        let mut c = self.connection().await?;
        tokio::time::timeout(REDIS_TIMEOUT * 2, cmd.query_async::<T>(&mut c))
            .await
            .map_err(|_| unavailable("redis command timed out"))?
            .map_err(unavailable)
    }

    /// Run a pipeline (atomic if built with `.atomic()`).
    pub async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisUnavailable> {
        let mut c = self.connection().await?;
        tokio::time::timeout(REDIS_TIMEOUT * 2, pipe.query_async::<T>(&mut c))
            .await
            .map_err(|_| unavailable("redis command timed out"))?
            .map_err(unavailable)
    }
}
