-- Sessions (DB store, used when REDIS_URL is unset), background jobs and cron
-- leases. Times are BIGINT milliseconds since the Unix epoch on every backend,
-- so lease and expiry comparisons are plain integer comparisons everywhere.
ALTER TABLE users ADD COLUMN password_hash TEXT;

CREATE TABLE sessions (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    format TEXT NOT NULL,
    payload BLOB NOT NULL,
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT NOT NULL DEFAULT 0,
    imported_count BIGINT NOT NULL DEFAULT 0,
    skipped_count BIGINT NOT NULL DEFAULT 0,
    error_count BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL DEFAULT 5,
    run_after BIGINT NOT NULL,
    locked_by TEXT NULL,
    locked_until BIGINT NULL,
    last_error TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE cron_leases (
    task TEXT NOT NULL,
    tick_at BIGINT NOT NULL,
    locked_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (task, tick_at)
);

CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX jobs_claim ON jobs (state, run_after);
CREATE INDEX jobs_updated ON jobs (updated_at);
