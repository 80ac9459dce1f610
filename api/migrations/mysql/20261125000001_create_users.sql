-- utf8mb4_unicode_ci, not utf8mb4_bin: sqlx reports *_bin columns as VARBINARY and
-- refuses to decode them into String. Emails are lower-cased by the service, so
-- the case-insensitive unique index changes nothing.
CREATE TABLE users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(254) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
