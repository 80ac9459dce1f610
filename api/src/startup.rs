//! Application assembly: bind, wire layers, serve, drain.
//!
//! Guarantee: [`Application::build`] binds the listening socket before it
//! returns (so [`Application::port`] is the real port even for `PORT=0`)
//! without waiting for the database (the pool is lazy, except that
//! `AUTO_MIGRATE` runs migrations first). [`Application::run_until_stopped`]
//! serves until SIGTERM/SIGINT, then stops accepting connections, waits at
//! most `SHUTDOWN_TIMEOUT` for in-flight requests, closes the pool and
//! returns `Ok`.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Settings;
use crate::db::{Db, SetupError};
use crate::error::panic_response;
use crate::login_limit::LoginLimiter;
use crate::redis_conn::Redis;
use crate::request_log::{log_request, RequestLog};
use crate::routes::{router, AppState};
use crate::sessions::SessionStore;
use crate::shutdown::shutdown_signal;

/// Errors that prevent the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database URL or migration problem.
    #[error(transparent)]
    Database(#[from] SetupError),
    /// `REDIS_URL` could not be used.
    #[error("session store: {0}")]
    Sessions(String),
    /// The address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address we tried.
        addr: String,
        /// OS error.
        source: std::io::Error,
    },
}

/// A bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    port: u16,
    app: Router,
    db: Db,
    settings: Settings,
}

impl Application {
    /// Connect (lazily), optionally migrate, and bind the socket.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let dbs = &settings.database;
        if dbs.is_embedded_default {
            tracing::warn!(
                database_url = %dbs.redacted_url(),
                "no DATABASE_URL or DATABASE_* variables set; using the embedded SQLite default"
            );
        }
        let db = Db::connect_lazy(dbs)?;
        if dbs.auto_migrate {
            db.migrate().await?;
            tracing::info!(backend = %dbs.backend, "migrations applied (AUTO_MIGRATE)");
        }
        let addr = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?
            .port();
        let redis = match &settings.redis_url {
            Some(url) => {
                Some(Redis::open(url.as_str()).map_err(|e| StartupError::Sessions(e.to_string()))?)
            }
            None => None,
        };
        let sessions = SessionStore::new(redis.clone(), db.clone(), settings.session_ttl);
        let login_limiter = LoginLimiter::new(settings.login_limit.clone(), redis, db.clone());
        tracing::info!(
            store = sessions.kind(),
            redis_url = settings
                .redis_url
                .as_ref()
                .map(|u| u.redacted())
                .unwrap_or_default(),
            session_ttl_s = settings.session_ttl.as_secs(),
            login_limit_per_email = settings.login_limit.per_email,
            login_limit_per_address = settings.login_limit.per_address,
            login_limit_window_s = settings.login_limit.window.as_secs(),
            trusted_proxies = %settings
                .trusted_proxies
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "session store"
        );
        let state = AppState {
            db: db.clone(),
            sessions,
            job_max_attempts: settings.jobs.max_attempts,
            login_limiter,
            trusted_proxies: settings.trusted_proxies.clone().into(),
        };
        let app = router(state, settings.test_hooks)
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn_with_state(
                RequestLog::new("api", "web", dbs.backend),
                log_request,
            ));
        Ok(Self {
            listener,
            port,
            app,
            db,
            settings,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Serve until SIGTERM or SIGINT, then shut down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_with_shutdown(shutdown_signal()).await
    }

    /// Serve until `signal` completes, then shut down gracefully.
    pub async fn run_with_shutdown(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            port,
            app,
            db,
            settings,
        } = self;
        let timeout = settings.shutdown_timeout;
        tracing::info!(
            port,
            host = %settings.host,
            backend = %settings.database.backend,
            database_url = %settings.database.redacted_url(),
            version = crate::VERSION,
            "listening"
        );
        let fired = Arc::new(Notify::new());
        let fired2 = fired.clone();
        let graceful = async move {
            signal.await;
            fired2.notify_one();
        };
        // The peer address feeds the per-address login limit.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .into_future();
        tokio::select! {
            res = server => res?,
            _ = async { fired.notified().await; tokio::time::sleep(timeout).await } => {
                tracing::warn!(
                    shutdown_timeout_ms = timeout.as_millis() as u64,
                    "shutdown timeout elapsed; abandoning in-flight requests"
                );
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), db.close())
            .await
            .is_err()
        {
            tracing::warn!("database pool did not close within 5s");
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}
