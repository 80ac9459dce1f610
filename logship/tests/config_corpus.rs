//! The config corpus: every `tests/configs/*.conf` must parse and check; every
//! `tests/configs/broken/*.conf` must fail with the error its first line announces
//! (`# expect: FILE:LINE: message…`, compared as a prefix, with the directory stripped).

use std::path::{Path, PathBuf};

use logship::config::Config;

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(sub)
}

fn confs(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_good_config_parses() {
    let files = confs(&dir(""));
    assert!(files.len() >= 10, "corpus too small: {files:?}");
    for f in files {
        match Config::from_file(&f) {
            Ok(cfg) => assert!(!cfg.describe().is_empty()),
            Err(errs) => panic!(
                "{} should parse, got:\n{}",
                f.display(),
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
}

#[test]
fn every_broken_config_fails_with_the_expected_error() {
    let d = dir("broken");
    let files = confs(&d);
    assert!(files.len() >= 15);
    let prefix = format!("{}/", d.display());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{} lacks # expect:", f.display()));
        let errs = match Config::from_file(&f) {
            Ok(_) => panic!("{} should fail", f.display()),
            Err(e) => e,
        };
        let msgs: Vec<String> = errs
            .iter()
            .map(|e| e.to_string().replace(&prefix, ""))
            .collect();
        assert!(
            msgs.iter().any(|m| m.starts_with(expect)),
            "{}: expected an error starting with\n  {expect}\ngot:\n  {}",
            f.display(),
            msgs.join("\n  ")
        );
    }
}

#[test]
fn include_glob_is_sorted_and_relative() {
    let cfg = Config::from_file(&dir("include_main.conf")).unwrap();
    assert_eq!(cfg.sources.len(), 1);
    let d = cfg.describe();
    // conf.d/20-app.conf's match comes before the main file's own match (include is first).
    let app = d.find("match  app.**").unwrap();
    let all = d.find("match  **").unwrap();
    assert!(app < all, "{d}");
    assert!(d.contains("conf.d/10-source.conf:1"), "{d}");
}

#[test]
fn typed_values_of_the_corpus() {
    use logship::config::Directive;
    use logship::filter::record_transformer::RecordTransformerConfig;
    use logship::forward::source::ForwardSourceConfig;
    use logship::output::elasticsearch::ElasticsearchConfig;
    let cfg = Config::from_file(&dir("multiline_values.conf")).unwrap();
    let f = cfg.sources[0]
        .config::<ForwardSourceConfig>()
        .expect("a forward source");
    assert_eq!(f.port, 24224);
    assert_eq!(f.bind, "127.0.0.1");
    assert_eq!(f.chunk_size_limit, 1_572_864);
    assert_eq!(f.read_timeout, std::time::Duration::from_millis(2500));
    let Directive::Filter(flt) = &cfg.root.directives[0] else {
        panic!()
    };
    assert!(
        flt.pattern.matches("app.web.x")
            && flt.pattern.matches("legacy.a")
            && !flt.pattern.matches("app.db")
    );
    let rt = flt.config::<RecordTransformerConfig>().unwrap();
    assert_eq!(rt.remove_keys, vec!["password", "token"]);
    assert_eq!(rt.keep_keys, vec!["a", "b"]);
    assert_eq!(rt.record[0], ("env".to_string(), "prod\tone".to_string()));
    assert_eq!(
        rt.record[1],
        ("path".to_string(), "/var/log/#not-a-comment".to_string())
    );
    assert_eq!(
        rt.record[2],
        (
            "raw".to_string(),
            "single ${tag} #{ENV[\"NOT_EXPANDED\"]}".to_string()
        )
    );

    let cfg = Config::from_file(&dir("forward_secure.conf")).unwrap();
    let f = cfg.sources[0]
        .config::<ForwardSourceConfig>()
        .expect("a forward source");
    let sec = f.security.as_ref().unwrap();
    assert_eq!(
        sec.users,
        vec![
            ("alice".into(), "p@ss # not a comment".into()),
            ("bob".into(), "b\"ob".into())
        ]
    );
    assert_eq!(
        f.tls.as_ref().unwrap().cert_path.as_deref(),
        Some("/etc/logship/tls/server.crt")
    );

    let cfg = Config::from_file(&dir("elasticsearch.conf")).unwrap();
    let Directive::Match(m) = &cfg.root.directives[1] else {
        panic!()
    };
    let es = m.config::<ElasticsearchConfig>().unwrap();
    assert!(es.logstash_format);
    assert_eq!(es.logstash_prefix, "api");
    // fluent-plugin-elasticsearch's parameters as written, each read (none is a no-effect note)
    assert!(es.include_timestamp && es.reconnect_on_error && es.reload_on_failure);
    assert!(!es.reload_connections && !es.verify_es_version_at_startup);
    assert_eq!(es.default_elasticsearch_version, 7);
    assert!(es.log_es_400_reason);
    assert!(
        cfg.no_effect.iter().all(|n| n.name != "include_timestamp"
            && n.name != "reconnect_on_error"
            && n.name != "log_es_400_reason"),
        "{:?}",
        cfg.no_effect
    );
    let b = es.buffer.as_ref().unwrap();
    assert_eq!(b.chunk_keys, vec!["tag", "time"]);
    assert!(b.is_file);
    assert_eq!(b.chunk_limit_size, Some(8 << 20));
    assert_eq!(b.total_limit_size, Some(512 << 20));
    // Chunks are cut per day (timekey 1d), delivered 10 minutes after each day ends.
    assert_eq!(b.timekey, Some(std::time::Duration::from_secs(86400)));
    assert_eq!(b.timekey_wait, std::time::Duration::from_secs(600));
    assert!(
        cfg.no_effect.iter().all(|n| !n.name.starts_with("timekey")),
        "{:?}",
        cfg.no_effect
    );
}
