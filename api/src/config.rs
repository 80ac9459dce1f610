//! Configuration from the environment (12-factor, factor III).
//!
//! Guarantee: [`Settings::from_env_map`] is a *pure* function of the map it
//! is given — it never reads the process environment, the file system or the
//! clock — so every rule below is unit-tested with plain `HashMap`s. Any
//! invalid value is an error whose message names the offending variable, and
//! no error message or `Debug`/log output ever contains a database password
//! (use [`redact_url`] / [`DatabaseSettings::redacted_url`]).
//!
//! Database selection, first match wins:
//!
//! 1. `DATABASE_URL` (`mysql://`, `mariadb://`, `postgres://`,
//!    `postgresql://`, `sqlite:`);
//! 2. the split variables of the original Flask service: `DATABASE_HOST`,
//!    `DATABASE_PORT`, `DATABASE_USER`, `DATABASE_PASSWORD`, `DATABASE_NAME`
//!    and `DATABASE_SCHEME` (default `mysql`); user and password are
//!    percent-encoded when the URL is assembled;
//! 3. nothing set: the embedded default, a SQLite file `./api.db` created if
//!    missing ([`DatabaseSettings::is_embedded_default`] lets the caller warn).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use std::net::IpAddr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The embedded default database used when no database variable is set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:./api.db";
/// Default HTTP port (the Flask service used 5000).
pub const DEFAULT_PORT: u16 = 5000;

/// A configuration error; the message always names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    /// Name of the environment variable at fault.
    pub var: &'static str,
    /// Human-readable explanation (never contains a password).
    pub reason: String,
}

impl ConfigError {
    fn new(var: &'static str, reason: impl Into<String>) -> Self {
        Self {
            var,
            reason: reason.into(),
        }
    }
}

/// Which SQL engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MySQL or MariaDB.
    MySql,
    /// PostgreSQL.
    Postgres,
    /// SQLite (file).
    Sqlite,
}

impl Backend {
    /// Short lowercase name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::MySql => "mysql",
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// Detect the backend from a URL's scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            Some(Backend::MySql)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if lower.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Database connection settings.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// Full connection URL (may contain a password: do not log, use
    /// [`Self::redacted_url`]). `mariadb://` is normalised to `mysql://`.
    pub url: String,
    /// Backend derived from the URL scheme.
    pub backend: Backend,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`, default 10).
    pub max_connections: u32,
    /// Pool acquire/connect timeout (`DATABASE_CONNECT_TIMEOUT`, default 3s).
    pub connect_timeout: Duration,
    /// Apply migrations when serving (`AUTO_MIGRATE`; default true only for SQLite).
    pub auto_migrate: bool,
    /// True when no database variable was set and the SQLite default is used.
    pub is_embedded_default: bool,
}

impl DatabaseSettings {
    /// Build settings for an explicit URL with default pool parameters.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let (url, backend) = normalise_url(url, "DATABASE_URL")?;
        Ok(Self {
            url,
            backend,
            max_connections: 10,
            connect_timeout: Duration::from_secs(3),
            auto_migrate: backend == Backend::Sqlite,
            is_embedded_default: false,
        })
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.redacted_url())
            .field("backend", &self.backend)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("auto_migrate", &self.auto_migrate)
            .field("is_embedded_default", &self.is_embedded_default)
            .finish()
    }
}

/// All settings of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Interface to bind (`HOST`, default `0.0.0.0`).
    pub host: String,
    /// Port to bind (`PORT`, default 5000; 0 = any free port).
    pub port: u16,
    /// Upper bound for draining in-flight requests (`SHUTDOWN_TIMEOUT`, default 30s).
    pub shutdown_timeout: Duration,
    /// Database settings.
    pub database: DatabaseSettings,
    /// Enable test-only routes under `/__test/` (`API_TEST_HOOKS=1`; off by default).
    pub test_hooks: bool,
    /// Session store (`REDIS_URL`; unset = sessions table in the database).
    pub redis_url: Option<RedisUrl>,
    /// Session lifetime (`SESSION_TTL`, default 24h).
    pub session_ttl: Duration,
    /// Background job settings (`JOB_*`).
    pub jobs: JobSettings,
    /// Cron expressions (`CRON_*`).
    pub cron: CronSettings,
    /// Login rate limits (`LOGIN_LIMIT_*`).
    pub login_limit: LoginLimitSettings,
    /// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`; empty =
    /// the TCP peer is the client).
    pub trusted_proxies: Vec<IpNet>,
}

/// Limits of `POST /sessions` (see [`crate::login_limit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLimitSettings {
    /// Attempts per e-mail address per window (`LOGIN_LIMIT_PER_EMAIL`, default 10; 0 = no limit).
    pub per_email: u32,
    /// Attempts per client address per window (`LOGIN_LIMIT_PER_ADDRESS`, default 100; 0 = no limit).
    pub per_address: u32,
    /// Length of the fixed counting window (`LOGIN_LIMIT_WINDOW`, default 15m, at most 24h).
    pub window: Duration,
}

impl Default for LoginLimitSettings {
    fn default() -> Self {
        Self {
            per_email: 10,
            per_address: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Parse `TRUSTED_PROXIES`: comma-separated IP addresses or CIDR networks.
fn trusted_proxies(v: &str) -> Result<Vec<IpNet>, ConfigError> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "TRUSTED_PROXIES",
                        format!("expected IP addresses or CIDR networks, got {p:?}"),
                    )
                })
        })
        .collect()
}

/// A Redis URL; its `Debug` form hides any password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub String);

impl RedisUrl {
    /// The full URL (may contain a password: do not log).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl From<String> for RedisUrl {
    fn from(s: String) -> Self {
        RedisUrl(s)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

/// Settings of `api worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Lease of a claimed job, renewed per batch (`JOB_LEASE`, default 60s).
    pub lease: Duration,
    /// Lines per transaction (`JOB_BATCH_SIZE`, default 500).
    pub batch_size: usize,
    /// Idle poll interval when no job is ready (`JOB_POLL_INTERVAL`, default 1s).
    pub poll_interval: Duration,
    /// Pause between batches, to limit database load (`JOB_BATCH_PAUSE`, default 0).
    pub batch_pause: Duration,
    /// Attempts before a job is marked failed (`JOB_MAX_ATTEMPTS`, default 5).
    pub max_attempts: i64,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            batch_pause: Duration::ZERO,
            max_attempts: 5,
        }
    }
}

/// Settings of `api cron`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSettings {
    /// Purge expired sessions and old finished jobs (`CRON_PURGE`).
    pub purge: String,
    /// Log a `users.stats` event (`CRON_STATS`).
    pub stats: String,
    /// Finished jobs older than this are purged (`JOB_RETENTION`, default 7d).
    pub job_retention: Duration,
}

impl Default for CronSettings {
    fn default() -> Self {
        Self {
            purge: DEFAULT_CRON_PURGE.to_owned(),
            stats: DEFAULT_CRON_STATS.to_owned(),
            job_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Default `CRON_PURGE`: at second 0 of every minute (sec min hour dom month dow).
pub const DEFAULT_CRON_PURGE: &str = "0 * * * * *";
/// Default `CRON_STATS`: at second 0 of every minute.
pub const DEFAULT_CRON_STATS: &str = "0 * * * * *";

fn cron_expr(var: &'static str, v: &str) -> Result<String, ConfigError> {
    use std::str::FromStr;
    cron::Schedule::from_str(v)
        .map(|_| v.to_owned())
        .map_err(|e| ConfigError::new(var, format!("invalid cron expression {v:?}: {e}")))
}

fn positive_duration(var: &'static str, v: &str) -> Result<Duration, ConfigError> {
    match parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(ConfigError::new(var, "must be > 0")),
        Err(r) => Err(ConfigError::new(var, r)),
    }
}

fn int_in(var: &'static str, v: &str, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    match v.parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            var,
            format!("expected an integer {lo}-{hi}, got {v:?}"),
        )),
    }
}

impl Settings {
    /// Parse settings from the real process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_map(&std::env::vars().collect())
    }

    /// Parse settings from a map of environment variables (pure).
    pub fn from_env_map(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

        let host = get("HOST").unwrap_or("0.0.0.0").to_owned();
        let port = match get("PORT") {
            None => DEFAULT_PORT,
            Some(v) => v.parse::<u16>().map_err(|_| {
                ConfigError::new("PORT", format!("expected a port number 0-65535, got {v:?}"))
            })?,
        };
        let shutdown_timeout = match get("SHUTDOWN_TIMEOUT") {
            None => Duration::from_secs(30),
            Some(v) => parse_duration(v).map_err(|r| ConfigError::new("SHUTDOWN_TIMEOUT", r))?,
        };
        let test_hooks = match get("API_TEST_HOOKS") {
            None => false,
            Some(v) => parse_bool(v).map_err(|r| ConfigError::new("API_TEST_HOOKS", r))?,
        };

        let (url, backend, is_embedded_default) = if let Some(url) = get("DATABASE_URL") {
            let (url, backend) = normalise_url(url, "DATABASE_URL")?;
            (url, backend, false)
        } else if SPLIT_VARS.iter().any(|k| get(k).is_some()) {
            let (url, backend) = url_from_split_vars(&get)?;
            (url, backend, false)
        } else {
            (DEFAULT_DATABASE_URL.to_owned(), Backend::Sqlite, true)
        };

        let max_connections = match get("DATABASE_MAX_CONNECTIONS") {
            None => 10,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(ConfigError::new(
                        "DATABASE_MAX_CONNECTIONS",
                        format!("expected an integer 1-1000, got {v:?}"),
                    ))
                }
            },
        };
        let connect_timeout = match get("DATABASE_CONNECT_TIMEOUT") {
            None => Duration::from_secs(3),
            Some(v) => match parse_duration(v) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err(ConfigError::new("DATABASE_CONNECT_TIMEOUT", "must be > 0")),
                Err(r) => return Err(ConfigError::new("DATABASE_CONNECT_TIMEOUT", r)),
            },
        };
        let auto_migrate = match get("AUTO_MIGRATE") {
            None => backend == Backend::Sqlite,
            Some(v) => parse_bool(v).map_err(|r| ConfigError::new("AUTO_MIGRATE", r))?,
        };

        let redis_url = match get("REDIS_URL") {
            None => None,
            Some(v) if v.starts_with("redis://") || v.starts_with("rediss://") => {
                Some(RedisUrl(v.to_owned()))
            }
            Some(v) => {
                return Err(ConfigError::new(
                    "REDIS_URL",
                    format!("expected redis:// or rediss://, got {}", redact_url(v)),
                ))
            }
        };
        let session_ttl = match get("SESSION_TTL") {
            None => Duration::from_secs(86_400),
            Some(v) => positive_duration("SESSION_TTL", v)?,
        };
        let mut jobs = JobSettings::default();
        if let Some(v) = get("JOB_LEASE") {
            jobs.lease = positive_duration("JOB_LEASE", v)?;
        }
        if let Some(v) = get("JOB_BATCH_SIZE") {
            jobs.batch_size = int_in("JOB_BATCH_SIZE", v, 1, 10_000)? as usize;
        }
        if let Some(v) = get("JOB_POLL_INTERVAL") {
            jobs.poll_interval = positive_duration("JOB_POLL_INTERVAL", v)?;
        }
        if let Some(v) = get("JOB_BATCH_PAUSE") {
            jobs.batch_pause =
                parse_duration(v).map_err(|r| ConfigError::new("JOB_BATCH_PAUSE", r))?;
        }
        if let Some(v) = get("JOB_MAX_ATTEMPTS") {
            jobs.max_attempts = int_in("JOB_MAX_ATTEMPTS", v, 1, 1000)?;
        }
        let mut cron = CronSettings::default();
        if let Some(v) = get("CRON_PURGE") {
            cron.purge = cron_expr("CRON_PURGE", v)?;
        }
        if let Some(v) = get("CRON_STATS") {
            cron.stats = cron_expr("CRON_STATS", v)?;
        }
        if let Some(v) = get("JOB_RETENTION") {
            cron.job_retention = positive_duration("JOB_RETENTION", v)?;
        }

        let mut login_limit = LoginLimitSettings::default();
        if let Some(v) = get("LOGIN_LIMIT_PER_EMAIL") {
            login_limit.per_email = int_in("LOGIN_LIMIT_PER_EMAIL", v, 0, 1_000_000)? as u32;
        }
        if let Some(v) = get("LOGIN_LIMIT_PER_ADDRESS") {
            login_limit.per_address = int_in("LOGIN_LIMIT_PER_ADDRESS", v, 0, 1_000_000)? as u32;
        }
        if let Some(v) = get("LOGIN_LIMIT_WINDOW") {
            login_limit.window = positive_duration("LOGIN_LIMIT_WINDOW", v)?;
            if login_limit.window > Duration::from_secs(86_400) {
                return Err(ConfigError::new(
                    "LOGIN_LIMIT_WINDOW",
                    "must be at most 24h",
                ));
            }
        }
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => trusted_proxies(v)?,
        };

        Ok(Settings {
            host,
            login_limit,
            trusted_proxies,
            port,
            shutdown_timeout,
            test_hooks,
            redis_url,
            session_ttl,
            jobs,
            cron,
            database: DatabaseSettings {
                url,
                backend,
                max_connections,
                connect_timeout,
                auto_migrate,
                is_embedded_default,
            },
        })
    }
}

/// The tracing filter directive: `RUST_LOG` wins, then `LOG_LEVEL`, then `info`.
pub fn log_filter(env: &HashMap<String, String>) -> String {
    ["RUST_LOG", "LOG_LEVEL"]
        .iter()
        .filter_map(|k| env.get(*k))
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
        .unwrap_or("info")
        .to_ascii_lowercase()
}

const SPLIT_VARS: [&str; 6] = [
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
    "DATABASE_NAME",
    "DATABASE_SCHEME",
];

/// Characters left as-is in the userinfo part (RFC 3986 unreserved).
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn url_from_split_vars<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<(String, Backend), ConfigError> {
    let scheme = get("DATABASE_SCHEME")
        .unwrap_or("mysql")
        .to_ascii_lowercase();
    let (backend, default_port) = match scheme.as_str() {
        "mysql" | "mariadb" => (Backend::MySql, 3306),
        "postgres" | "postgresql" => (Backend::Postgres, 5432),
        other => {
            return Err(ConfigError::new(
                "DATABASE_SCHEME",
                format!("expected mysql, mariadb, postgres or postgresql, got {other:?}"),
            ))
        }
    };
    let host = get("DATABASE_HOST").ok_or_else(|| {
        ConfigError::new(
            "DATABASE_HOST",
            "required when other DATABASE_* variables are set",
        )
    })?;
    if host.contains(['/', '@', '?', '#', ' ']) {
        return Err(ConfigError::new(
            "DATABASE_HOST",
            format!("not a host name: {host:?}"),
        ));
    }
    let port = match get("DATABASE_PORT") {
        None => default_port,
        Some(v) => match v.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(ConfigError::new(
                    "DATABASE_PORT",
                    format!("expected a port number 1-65535, got {v:?}"),
                ))
            }
        },
    };
    let user = get("DATABASE_USER")
        .ok_or_else(|| ConfigError::new("DATABASE_USER", "required when DATABASE_HOST is set"))?;
    let name = get("DATABASE_NAME")
        .ok_or_else(|| ConfigError::new("DATABASE_NAME", "required when DATABASE_HOST is set"))?;
    let user = utf8_percent_encode(user, USERINFO).to_string();
    let userinfo = match get("DATABASE_PASSWORD") {
        Some(p) => format!("{user}:{}", utf8_percent_encode(p, USERINFO)),
        None => user,
    };
    let name = utf8_percent_encode(name, USERINFO).to_string();
    let scheme = match backend {
        Backend::MySql => "mysql",
        _ => "postgres",
    };
    Ok((
        format!("{scheme}://{userinfo}@{host}:{port}/{name}"),
        backend,
    ))
}

fn normalise_url(url: &str, var: &'static str) -> Result<(String, Backend), ConfigError> {
    let backend = Backend::from_url(url).ok_or_else(|| {
        ConfigError::new(
            var,
            format!(
                "unsupported scheme in {}; expected mysql://, mariadb://, postgres://, postgresql:// or sqlite:",
                redact_url(url)
            ),
        )
    })?;
    let url = match url.get(..10) {
        Some(p) if p.eq_ignore_ascii_case("mariadb://") => format!("mysql://{}", &url[10..]),
        _ => url.to_owned(),
    };
    if backend != Backend::Sqlite {
        let rest = &url[url.find("://").map(|i| i + 3).unwrap_or(0)..];
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        if hostport.is_empty() {
            return Err(ConfigError::new(
                var,
                format!("missing host in {}", redact_url(&url)),
            ));
        }
    }
    Ok((url, backend))
}

/// Replace the password of a `scheme://user:password@host/...` URL with `***`.
///
/// URLs without a password (or without userinfo, e.g. `sqlite:`) are
/// returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// Parse `30`, `30s`, `500ms`, `2m`, `24h`, `7d` into a duration (bare number = seconds).
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&v[..i], v[i..].trim()),
        None => (v, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 30, 30s or 500ms, got {v:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        "d" => Ok(Duration::from_secs(n.saturating_mul(86_400))),
        _ => Err(format!(
            "expected a duration like 30, 30s or 500ms, got {v:?}"
        )),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true/false/1/0, got {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("abc").is_err());
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("mysql://app:secret@db:3306/x"),
            "mysql://app:***@db:3306/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite:./api.db"), "sqlite:./api.db");
        assert_eq!(redact_url("mysql://a:p@ss@h/db"), "mysql://a:***@h/db");
    }

    #[test]
    fn defaults() {
        let s = Settings::from_env_map(&env(&[])).unwrap();
        assert_eq!(s.port, 5000);
        assert!(s.database.is_embedded_default);
        assert!(s.database.auto_migrate);
        assert_eq!(s.database.url, DEFAULT_DATABASE_URL);
        assert_eq!(s.redis_url, None);
        assert_eq!(s.session_ttl, Duration::from_secs(86_400));
        assert_eq!(s.jobs, JobSettings::default());
        assert_eq!(s.cron, CronSettings::default());
        assert_eq!(s.login_limit, LoginLimitSettings::default());
        assert!(s.trusted_proxies.is_empty());
    }

    #[test]
    fn login_limit_and_proxy_vars() {
        let s = Settings::from_env_map(&env(&[
            ("LOGIN_LIMIT_PER_EMAIL", "3"),
            ("LOGIN_LIMIT_PER_ADDRESS", "0"),
            ("LOGIN_LIMIT_WINDOW", "30s"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1"),
        ]))
        .unwrap();
        assert_eq!(s.login_limit.per_email, 3);
        assert_eq!(s.login_limit.per_address, 0);
        assert_eq!(s.login_limit.window, Duration::from_secs(30));
        let nets: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        for (k, v) in [
            ("LOGIN_LIMIT_PER_EMAIL", "-1"),
            ("LOGIN_LIMIT_PER_ADDRESS", "lots"),
            ("LOGIN_LIMIT_WINDOW", "0"),
            ("LOGIN_LIMIT_WINDOW", "2d"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "proxy.example.com"),
        ] {
            let e = Settings::from_env_map(&env(&[(k, v)])).unwrap_err();
            assert_eq!(e.var, k, "{k}={v}");
        }
    }

    #[test]
    fn worker_and_cron_vars() {
        let s = Settings::from_env_map(&env(&[
            ("REDIS_URL", "redis://127.0.0.1:6379/"),
            ("SESSION_TTL", "2s"),
            ("JOB_LEASE", "2s"),
            ("JOB_BATCH_SIZE", "100"),
            ("CRON_STATS", "* * * * * *"),
        ]))
        .unwrap();
        assert_eq!(
            s.redis_url.as_ref().map(RedisUrl::as_str),
            Some("redis://127.0.0.1:6379/")
        );
        let with_pw =
            Settings::from_env_map(&env(&[("REDIS_URL", "redis://:s3cret@r:6379/0")])).unwrap();
        assert!(!format!("{with_pw:?}").contains("s3cret"));
        assert_eq!(s.session_ttl, Duration::from_secs(2));
        assert_eq!(s.jobs.lease, Duration::from_secs(2));
        assert_eq!(s.jobs.batch_size, 100);
        assert_eq!(s.cron.stats, "* * * * * *");
        for (k, v) in [
            ("REDIS_URL", "http://x"),
            ("SESSION_TTL", "0"),
            ("JOB_BATCH_SIZE", "0"),
            ("CRON_PURGE", "every minute"),
        ] {
            let e = Settings::from_env_map(&env(&[(k, v)])).unwrap_err();
            assert_eq!(e.var, k);
        }
    }

    #[test]
    fn log_filter_precedence() {
        assert_eq!(log_filter(&env(&[])), "info");
        assert_eq!(log_filter(&env(&[("LOG_LEVEL", "DEBUG")])), "debug");
        assert_eq!(
            log_filter(&env(&[("LOG_LEVEL", "debug"), ("RUST_LOG", "warn")])),
            "warn"
        );
    }
}
