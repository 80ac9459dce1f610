-- Authorization and login rate limiting.
-- * users.role: 'user' or 'admin'; only `api users promote EMAIL` grants 'admin'.
-- * sessions_user_id: deleting a user deletes all of their database sessions.
-- * login_attempts: fixed-window counters of POST /sessions per e-mail and per
--   client address (the database limiter, used when REDIS_URL is unset); rows of
--   past windows are deleted by the `purge` cron task.
ALTER TABLE users ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'user';

CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE login_attempts (
    bucket VARCHAR(80) NOT NULL,
    window_start BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);

CREATE INDEX login_attempts_window ON login_attempts (window_start);
