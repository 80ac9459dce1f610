//! The database connection pool: sqlx connections lent to one operation at a
//! time, and taken back **without a round trip** when they are known to be
//! clean.
//!
//! # Why not `sqlx::Pool`
//!
//! sqlx 0.8's pool pings every connection when it comes back
//! (`PoolConnection::return_to_pool`: unconditional, after the optional
//! `after_release` hook, in a task spawned by `Drop`). The ping makes reuse
//! safe: it first flushes what is queued (the `ROLLBACK` of a transaction
//! dropped without commit) and drains unread results (a query future dropped
//! mid-way, or `fetch_optional`, which stops at the first row), then checks
//! that the server answers. But it costs the database a second command for
//! every query the api makes (`COM_PING` on MariaDB, a `Sync` on PostgreSQL),
//! and no pool option turns it off. On MariaDB that doubled the commands per
//! `GET /users/{id}` (see docs/api-bench.md).
//!
//! # What this pool guarantees instead
//!
//! The pool itself is [`deadpool`]'s (a semaphore of `max_connections`, an
//! idle list, recycling at checkout); this module decides when a connection
//! may be reused:
//!
//! * A connection goes straight back to the idle list only if the operation
//!   that borrowed it **finished** ([`PooledConn::finish`]: it reached its end
//!   without an error; unread rest of a result is drained there, which costs
//!   no round trip because the server sent it with the row), **and** nothing
//!   is queued on it (`should_flush`: no rollback of a dropped transaction
//!   waiting to be sent) **and** no transaction is open on it.
//! * Any other connection (the future was dropped mid-query because the
//!   client went away or a timeout fired, an error, a transaction left open)
//!   gets exactly what sqlx gives every connection: in a background task, a
//!   ping within [`SETTLE_TIMEOUT`], which sends the queued rollback and
//!   drains unread results; back to the pool if the server answered, closed
//!   otherwise. So a connection is never reused mid-transaction or with
//!   unread results, and the common case costs nothing.
//!
//! # Before use, lifetime, idle connections
//!
//! As with the previous sqlx settings: a connection idle (not checked out) for
//! at least [`PING_IF_IDLE_FOR`] is pinged before it is lent (a dead one is
//! replaced by a new connection, so the pool heals after a database restart);
//! connections are replaced after [`MAX_LIFETIME`], and a reaper task closes
//! connections idle for [`IDLE_TIMEOUT`]. Connections are opened on demand
//! (the pool is lazy); acquiring one, including connecting, is bounded by the
//! acquire timeout (`DATABASE_CONNECT_TIMEOUT`).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use deadpool::managed::{self, Manager, Metrics, Object, PoolError, RecycleError, RecycleResult};
use sqlx::Connection;

/// Connections idle (not checked out) at least this long are pinged before use.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// Connections idle this long are closed (by the reaper, or at checkout).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Connections older than this are replaced at their next checkout.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Bound of the ping that settles a connection returned in an unknown state.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the reaper looks for idle connections.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// Opens and recycles connections of one sqlx driver.
pub struct ConnManager<C: Connection + 'static> {
    options: C::Options,
}

impl<C: Connection + 'static> Manager for ConnManager<C> {
    type Type = C;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<C, sqlx::Error> {
        C::connect_with(&self.options).await
    }

    async fn recycle(&self, conn: &mut C, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if metrics.age() >= MAX_LIFETIME {
            return Err(RecycleError::message("maximum lifetime reached"));
        }
        // `last_used` is the time since the connection was last lent out,
        // so at least its idle time.
        let idle = metrics.last_used();
        if idle >= IDLE_TIMEOUT {
            return Err(RecycleError::message("idle timeout reached"));
        }
        if idle >= PING_IF_IDLE_FOR {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A pool of connections of one sqlx driver (`MySqlConnection`,
/// `PgConnection` or `SqliteConnection`).
pub struct ConnPool<C: Connection + 'static> {
    pool: managed::Pool<ConnManager<C>, PooledConn<C>>,
    acquire_timeout: Duration,
}

impl<C: Connection + 'static> Clone for ConnPool<C> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            acquire_timeout: self.acquire_timeout,
        }
    }
}

impl<C: Connection + 'static> fmt::Debug for ConnPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("ConnPool")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

impl<C: Connection + 'static> ConnPool<C> {
    /// A pool of at most `max_connections`; no connection is opened until
    /// one is needed. Starts the idle reaper when called inside a Tokio
    /// runtime.
    pub fn new_lazy(options: C::Options, max_connections: u32, acquire_timeout: Duration) -> Self {
        let pool = managed::Pool::builder(ConnManager { options })
            .max_size(max_connections.max(1) as usize)
            // The most recently used connection first: under light load the
            // same few connections stay warm and the others age out.
            .queue_mode(managed::QueueMode::Lifo)
            .build()
            .expect("no timeouts are configured, so no runtime is needed");
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap_idle(pool.weak()));
        }
        Self {
            pool,
            acquire_timeout,
        }
    }

    /// Borrow a connection, waiting (and connecting if needed) at most the
    /// acquire timeout. Errors are sqlx's: `PoolTimedOut`, `PoolClosed`, or
    /// the connect error.
    pub async fn acquire(&self) -> Result<PooledConn<C>, sqlx::Error> {
        match tokio::time::timeout(self.acquire_timeout, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(PoolError::Backend(e))) => Err(e),
            Ok(Err(PoolError::Closed)) => Err(sqlx::Error::PoolClosed),
            Ok(Err(_)) | Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// Connections open and not lent out (nor being settled) right now.
    pub fn idle(&self) -> usize {
        self.pool.status().available
    }

    /// Close the pool: later `acquire`s fail with `PoolClosed`, idle
    /// connections are closed politely (`COM_QUIT`, `Terminate`), connections
    /// still lent out are dropped when they come back.
    pub async fn close(&self) {
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

/// Every [`REAP_EVERY`], close the connections idle for [`IDLE_TIMEOUT`];
/// ends when the pool is dropped or closed.
async fn reap_idle<C: Connection + 'static>(pool: managed::WeakPool<ConnManager<C>>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        let expired = pool
            .retain(|_, m| m.last_used() < IDLE_TIMEOUT && m.age() < MAX_LIFETIME)
            .removed;
        drop(pool);
        for conn in expired {
            let _ = conn.close().await;
        }
    }
}

/// A connection lent by a [`ConnPool`]; goes back when dropped (directly if
/// [`finish`](Self::finish)ed clean, else after a settling ping, see the
/// module docs). Dereferences to the sqlx connection, which is an executor.
pub struct PooledConn<C: Connection + 'static> {
    obj: Option<Object<ConnManager<C>>>,
    finished: bool,
}

impl<C: Connection + 'static> From<Object<ConnManager<C>>> for PooledConn<C> {
    fn from(obj: Object<ConnManager<C>>) -> Self {
        Self {
            obj: Some(obj),
            finished: false,
        }
    }
}

impl<C: Connection + 'static> PooledConn<C> {
    /// The operation that borrowed this connection completed: drain the rest
    /// of a partly read result (already sent by the server: no round trip)
    /// so that the connection can go straight back to the pool. If that
    /// fails the connection is not marked, and is settled or closed on drop.
    pub async fn finish(&mut self) {
        if self.flush().await.is_ok() {
            self.finished = true;
        }
    }
}

impl<C: Connection + 'static> Deref for PooledConn<C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.obj.as_ref().expect("connection present until drop")
    }
}

impl<C: Connection + 'static> DerefMut for PooledConn<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.obj.as_mut().expect("connection present until drop")
    }
}

impl<C: Connection + 'static> Drop for PooledConn<C> {
    fn drop(&mut self) {
        let Some(obj) = self.obj.take() else { return };
        // `should_flush`: a rollback queued by a dropped transaction (or any
        // other unsent command) is waiting in the write buffer.
        if self.finished && !obj.should_flush() && !obj.is_in_transaction() {
            return; // dropping the object puts it back on the idle list
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(settle(obj));
            }
            // No runtime left to talk to the server: just drop the socket.
            Err(_) => drop(Object::take(obj)),
        }
    }
}

/// Make a connection returned in an unknown state reusable, as sqlx's pool
/// does for every connection: ping (which first sends anything queued and
/// drains unread results); keep it if the server answers in time.
async fn settle<C: Connection + 'static>(mut obj: Object<ConnManager<C>>) {
    match tokio::time::timeout(SETTLE_TIMEOUT, obj.ping()).await {
        Ok(Ok(())) => {} // dropped here: back on the idle list
        Ok(Err(error)) => {
            tracing::warn!(%error, "closing a database connection that failed its check on return");
            let _ = Object::take(obj).close_hard().await;
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = SETTLE_TIMEOUT.as_millis() as u64,
                "closing a database connection that did not answer its check on return"
            );
            let _ = Object::take(obj).close_hard().await;
        }
    }
}
