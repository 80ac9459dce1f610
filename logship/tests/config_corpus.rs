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
    let users: Vec<(&str, &str)> = sec
        .users
        .iter()
        .map(|(u, p)| (u.as_str(), p.expose()))
        .collect();
    assert_eq!(users, [("alice", "p@ss # not a comment"), ("bob", "b\"ob")]);
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

/// Reads `name` with `vars` as the whole environment (the test process's is not used).
fn with_env(name: &str, vars: &[(&str, &str)]) -> Config {
    let env = |n: &str| {
        vars.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
    };
    let root = logship::config::syntax::parse_file_with_env(&dir("").join(name), &env).unwrap();
    Config::from_element(&root).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn es_output(cfg: &Config, i: usize) -> logship::output::elasticsearch::ElasticsearchConfig {
    let logship::config::Directive::Match(m) = &cfg.root.directives[i] else {
        panic!("directive {i} is not a match")
    };
    m.config::<logship::output::elasticsearch::ElasticsearchConfig>()
        .expect("an elasticsearch output")
        .clone()
}

#[test]
fn k8s_daemonset_with_no_variable_set_takes_every_default() {
    use logship::forward::source::ForwardSourceConfig;
    let cfg = with_env("k8s_daemonset.conf", &[]);
    let f = cfg.sources[0].config::<ForwardSourceConfig>().unwrap();
    assert_eq!((f.bind.as_str(), f.port), ("0.0.0.0", 24224));
    assert!(!f.skip_invalid_event, "use_default: the declared default");
    let es = es_output(&cfg, 1);
    assert_eq!(es.hosts, ["elasticsearch:9200"]);
    assert_eq!(es.scheme, "http");
    // ENV['FLUENT_ELASTICSEARCH_PATH'] alone: Ruby's nil interpolates as "".
    assert_eq!(es.path.as_deref(), Some(""));
    assert_eq!(es.user.as_deref(), None);
    assert!(es.password.is_none());
    assert!(es.logstash_format);
    assert_eq!(es.logstash_prefix, "logstash");
    assert_eq!(
        (es.template_name.as_deref(), es.template_file.as_deref()),
        (None, None)
    );
    assert!(!es.template_overwrite);
    let b = es.buffer.unwrap();
    assert_eq!(b.flush_thread_count, 8);
    assert_eq!(b.flush_interval, std::time::Duration::from_secs(5));
    assert_eq!(b.chunk_limit_size, Some(2 << 20));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // Given with use_nil, target_index_key (no effect) is not reported; type_name is.
    let names: Vec<&str> = cfg.no_effect.iter().map(|n| n.name.as_str()).collect();
    assert!(
        names.contains(&"type_name") && !names.contains(&"target_index_key"),
        "{names:?}"
    );
}

#[test]
fn k8s_daemonset_with_every_variable_set_follows_them() {
    let vars = [
        ("FLUENT_FORWARD_PORT", "0"),
        ("FLUENT_FORWARD_BIND", "127.0.0.1"),
        ("FLUENT_FORWARD_SKIP_INVALID_EVENT", "true"),
        ("FLUENT_ELASTICSEARCH_HOST", "es.example"),
        ("FLUENT_ELASTICSEARCH_PORT", "9201"),
        ("FLUENT_ELASTICSEARCH_PATH", "/proxy"),
        ("FLUENT_ELASTICSEARCH_SCHEME", "https"),
        ("FLUENT_ELASTICSEARCH_USER", "elastic"),
        ("FLUENT_ELASTICSEARCH_PASSWORD", "changeme"),
        ("FLUENT_ELASTICSEARCH_LOGSTASH_PREFIX", "k8s"),
        ("FLUENT_ELASTICSEARCH_TEMPLATE_NAME", "k8s"),
        ("FLUENT_ELASTICSEARCH_TEMPLATE_FILE", "/etc/t.json"),
        ("FLUENT_ELASTICSEARCH_TEMPLATE_OVERWRITE", "true"),
        ("FLUENT_ELASTICSEARCH_BUFFER_FLUSH_THREAD_COUNT", "2"),
        ("FLUENT_ELASTICSEARCH_BUFFER_FLUSH_INTERVAL", "1s"),
        // Set but empty: Ruby's "" is truthy, so the default is not taken.
        ("FLUENT_ELASTICSEARCH_LOGSTASH_DATEFORMAT", ""),
    ];
    let cfg = with_env("k8s_daemonset.conf", &vars);
    let f = cfg.sources[0]
        .config::<logship::forward::source::ForwardSourceConfig>()
        .unwrap();
    assert_eq!(
        (f.bind.as_str(), f.port, f.skip_invalid_event),
        ("127.0.0.1", 0, true)
    );
    let es = es_output(&cfg, 1);
    assert_eq!(es.hosts, ["es.example:9201"]);
    assert_eq!(
        (es.scheme.as_str(), es.path.as_deref()),
        ("https", Some("/proxy"))
    );
    assert_eq!(es.user.as_deref(), Some("elastic"));
    assert_eq!(es.password.as_ref().map(|p| p.expose()), Some("changeme"));
    assert_eq!(es.logstash_prefix, "k8s");
    assert_eq!(es.logstash_dateformat, "");
    assert_eq!(es.template_file.as_deref(), Some("/etc/t.json"));
    assert!(es.template_overwrite);
    let b = es.buffer.unwrap();
    assert_eq!(
        (b.flush_thread_count, b.flush_interval),
        (2, std::time::Duration::from_secs(1))
    );
}

#[test]
fn efk_guide_reads_flush_interval_into_the_buffer() {
    use logship::output::copy::CopyConfig;
    use logship::output::elasticsearch::ElasticsearchConfig;
    let cfg = Config::from_file(&dir("efk_guide.conf")).unwrap();
    let logship::config::Directive::Match(m) = &cfg.root.directives[0] else {
        panic!()
    };
    let copy = m.config::<CopyConfig>().unwrap();
    let es = copy.stores[0]
        .plugin
        .as_any()
        .downcast_ref::<ElasticsearchConfig>()
        .unwrap();
    assert_eq!(
        es.buffer.as_ref().unwrap().flush_interval,
        std::time::Duration::from_secs(1)
    );
    assert_eq!(es.tag_key, "@log_name");
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].ends_with("efk_guide.conf:28: warning: 'flush_interval' in <store> (@type elasticsearch) is Fluentd v0.12's form: read as 'flush_interval 1s' in <buffer>; write it there (Fluentd v1)"), "{}", w[0]);
    assert_eq!(cfg.no_effect_report().len(), 1);
    assert!(cfg.no_effect_report()[0].starts_with("type_name: "));
}
