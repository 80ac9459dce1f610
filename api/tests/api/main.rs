//! Integration tests for the `api` service (one test binary).
//!
//! Tests needing MariaDB/PostgreSQL read `TEST_MYSQL_URL` / `TEST_POSTGRES_URL`;
//! when absent they are skipped, unless `REQUIRE_SERVICES=1`, where they fail.

mod authz;
mod binary;
mod config;
mod helpers;
mod login_limit;
mod sessions;
mod users;
