//! Configuration parsing, through the public pure function.

use std::collections::HashMap;
use std::time::Duration;

use api::config::{redact_url, Backend, Settings};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err_var(pairs: &[(&str, &str)]) -> (&'static str, String) {
    let e = Settings::from_env_map(&env(pairs)).expect_err("should fail");
    (e.var, e.to_string())
}

#[test]
fn empty_env_uses_embedded_sqlite_default() {
    let s = Settings::from_env_map(&env(&[])).unwrap();
    assert_eq!(s.port, 5000);
    assert_eq!(s.host, "0.0.0.0");
    assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(s.database.url, "sqlite:./api.db");
    assert_eq!(s.database.backend, Backend::Sqlite);
    assert!(s.database.is_embedded_default);
    assert!(s.database.auto_migrate);
    assert!(!s.test_hooks);
}

#[test]
fn seed_style_split_variables_build_a_url() {
    let s = Settings::from_env_map(&env(&[
        ("DATABASE_HOST", "db.internal"),
        ("DATABASE_PORT", "3307"),
        ("DATABASE_USER", "app"),
        ("DATABASE_PASSWORD", "p@ss:w/rd"),
        ("DATABASE_NAME", "users"),
    ]))
    .unwrap();
    assert_eq!(s.database.backend, Backend::MySql);
    assert_eq!(
        s.database.url,
        "mysql://app:p%40ss%3Aw%2Frd@db.internal:3307/users"
    );
    assert!(!s.database.is_embedded_default);
    assert!(
        !s.database.auto_migrate,
        "no auto-migrate for server databases"
    );
}

#[test]
fn split_variables_default_port_per_scheme() {
    let base = [
        ("DATABASE_HOST", "h"),
        ("DATABASE_USER", "u"),
        ("DATABASE_NAME", "n"),
    ];
    let s = Settings::from_env_map(&env(&base)).unwrap();
    assert_eq!(s.database.url, "mysql://u@h:3306/n");
    let mut pg = base.to_vec();
    pg.push(("DATABASE_SCHEME", "postgresql"));
    let s = Settings::from_env_map(&env(&pg)).unwrap();
    assert_eq!(s.database.url, "postgres://u@h:5432/n");
    assert_eq!(s.database.backend, Backend::Postgres);
}

#[test]
fn database_url_takes_precedence_over_split_variables() {
    let s = Settings::from_env_map(&env(&[
        ("DATABASE_URL", "postgres://a:b@pg:5432/x"),
        ("DATABASE_HOST", "ignored"),
        ("DATABASE_SCHEME", "mysql"),
    ]))
    .unwrap();
    assert_eq!(s.database.url, "postgres://a:b@pg:5432/x");
    assert_eq!(s.database.backend, Backend::Postgres);
}

#[test]
fn all_schemes_are_recognised() {
    for (url, backend) in [
        ("mysql://u:p@h/d", Backend::MySql),
        ("mariadb://u:p@h/d", Backend::MySql),
        ("postgres://u:p@h/d", Backend::Postgres),
        ("postgresql://u:p@h/d", Backend::Postgres),
        ("sqlite:/tmp/x.db", Backend::Sqlite),
        ("sqlite::memory:", Backend::Sqlite),
    ] {
        let s = Settings::from_env_map(&env(&[("DATABASE_URL", url)])).unwrap();
        assert_eq!(s.database.backend, backend, "{url}");
    }
    let s = Settings::from_env_map(&env(&[("DATABASE_URL", "mariadb://u:p@h/d")])).unwrap();
    assert_eq!(
        s.database.url, "mysql://u:p@h/d",
        "mariadb:// is normalised"
    );
}

#[test]
fn invalid_values_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PORT", "abc")], "PORT"),
        (&[("PORT", "70000")], "PORT"),
        (&[("SHUTDOWN_TIMEOUT", "soon")], "SHUTDOWN_TIMEOUT"),
        (&[("DATABASE_URL", "redis://x")], "DATABASE_URL"),
        (&[("DATABASE_URL", "mysql://u:p@/db")], "DATABASE_URL"),
        (
            &[("DATABASE_MAX_CONNECTIONS", "0")],
            "DATABASE_MAX_CONNECTIONS",
        ),
        (
            &[("DATABASE_MAX_CONNECTIONS", "many")],
            "DATABASE_MAX_CONNECTIONS",
        ),
        (
            &[("DATABASE_CONNECT_TIMEOUT", "0")],
            "DATABASE_CONNECT_TIMEOUT",
        ),
        (&[("AUTO_MIGRATE", "maybe")], "AUTO_MIGRATE"),
        (&[("API_TEST_HOOKS", "sure")], "API_TEST_HOOKS"),
        (&[("DATABASE_USER", "u")], "DATABASE_HOST"),
        (
            &[("DATABASE_HOST", "h"), ("DATABASE_NAME", "n")],
            "DATABASE_USER",
        ),
        (
            &[("DATABASE_HOST", "h"), ("DATABASE_USER", "u")],
            "DATABASE_NAME",
        ),
        (
            &[
                ("DATABASE_HOST", "h"),
                ("DATABASE_USER", "u"),
                ("DATABASE_NAME", "n"),
                ("DATABASE_PORT", "x"),
            ],
            "DATABASE_PORT",
        ),
        (
            &[
                ("DATABASE_HOST", "h"),
                ("DATABASE_USER", "u"),
                ("DATABASE_NAME", "n"),
                ("DATABASE_SCHEME", "oracle"),
            ],
            "DATABASE_SCHEME",
        ),
    ];
    for (pairs, var) in cases {
        let (got, msg) = err_var(pairs);
        assert_eq!(got, *var, "{pairs:?}");
        assert!(msg.contains(var), "message {msg:?} should name {var}");
    }
}

#[test]
fn durations_and_numbers_parse() {
    let s = Settings::from_env_map(&env(&[
        ("SHUTDOWN_TIMEOUT", "500ms"),
        ("DATABASE_CONNECT_TIMEOUT", "2"),
        ("DATABASE_MAX_CONNECTIONS", "32"),
        ("PORT", "0"),
        ("AUTO_MIGRATE", "false"),
        ("API_TEST_HOOKS", "1"),
    ]))
    .unwrap();
    assert_eq!(s.shutdown_timeout, Duration::from_millis(500));
    assert_eq!(s.database.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.database.max_connections, 32);
    assert_eq!(s.port, 0);
    assert!(!s.database.auto_migrate);
    assert!(s.test_hooks);
}

#[test]
fn passwords_never_leak() {
    assert_eq!(
        redact_url("mysql://app:hunter2@db:3306/users"),
        "mysql://app:***@db:3306/users"
    );
    let s = Settings::from_env_map(&env(&[("DATABASE_URL", "postgres://app:hunter2@db/users")]))
        .unwrap();
    assert_eq!(s.database.redacted_url(), "postgres://app:***@db/users");
    assert!(
        !format!("{s:?}").contains("hunter2"),
        "Debug output is redacted"
    );
    let (_, msg) = err_var(&[("DATABASE_URL", "bogus://app:hunter2@db/users")]);
    assert!(!msg.contains("hunter2"), "{msg}");
    let s = Settings::from_env_map(&env(&[
        ("DATABASE_HOST", "h"),
        ("DATABASE_USER", "u"),
        ("DATABASE_PASSWORD", "hunter2"),
        ("DATABASE_NAME", "n"),
    ]))
    .unwrap();
    assert!(!s.database.redacted_url().contains("hunter2"));
}
