//! # api — a 12-factor users REST service
//!
//! A small CRUD service over a `users` table, built with axum and sqlx, that
//! runs unchanged against MySQL/MariaDB, PostgreSQL or SQLite. The backend is
//! chosen at run time from the database URL (see [`db`]).
//!
//! Module map (one concept per module):
//!
//! * [`config`] — all configuration comes from environment variables, parsed
//!   by a pure function over a map so it can be unit-tested.
//! * [`telemetry`] — structured JSON (bunyan) logs on stdout, one per line.
//! * [`db`] — the database handle, repository operations and migrations.
//! * [`validation`] — input validation for names and e-mail addresses.
//! * [`error`] — every error leaves as `application/problem+json` (RFC 9457).
//! * [`routes`] — HTTP handlers: users CRUD, health, OpenAPI.
//! * [`request_log`] — per-request span, request id and completion log.
//! * [`shutdown`] — SIGTERM/SIGINT handling for graceful shutdown.
//! * [`startup`] — [`startup::Application`] wires everything together.
//! * [`seed`] — bulk generation of fake users for benchmarks and demos.
//! * [`sessions`] — passwords (argon2id) and bearer-token sessions in Redis
//!   or the database.
//! * [`jobs`] — the jobs table, bulk user imports and the `api worker` loop.
//! * [`cron`] — the `api cron` scheduler with per-tick leases.
//! * [`healthcheck`] — `api healthcheck`, a dependency-free HTTP probe.
//! * [`authz`] — roles and who may change which account.
//! * [`login_limit`] — rate limit of log-in attempts per e-mail and address.
//! * [`client_addr`] — the client address behind (trusted) proxies.
//! * [`redis_conn`] — the Redis connection shared by sessions and limits.
//! * [`admin`] — one-off admin commands (`api users promote EMAIL`).

pub mod admin;
pub mod authz;
pub mod client_addr;
pub mod config;
pub mod cron;
pub mod db;
pub mod error;
pub mod healthcheck;
pub mod jobs;
pub mod login_limit;
pub mod redis_conn;
pub mod request_log;
pub mod routes;
pub mod seed;
pub mod sessions;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod validation;

/// Crate version plus the git commit baked in by `build.rs`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("API_GIT_SHA"), ")");
