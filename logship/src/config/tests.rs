//! Tests of the top level, and of every plugin's declaration against its reader and the docs.

use super::params::{DefaultValue, ParamSpec, ParamType, SectionSpec, Status};
use super::registry::{self, PluginSpec};
use super::*;

fn check(t: &str) -> Result<Config, Vec<ConfigError>> {
    Config::from_str_at(t, Path::new("t.conf"))
}

#[test]
fn default_config_is_valid() {
    let c = check(DEFAULT_CONFIG).unwrap();
    assert_eq!(c.sources.len(), 1);
    assert_eq!(c.root.directives.len(), 1);
    assert!(c.no_effect.is_empty());
}

#[test]
fn unknown_things() {
    let e = check("<match **>\n  @type stdout\n  colour red\n</match>\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string().starts_with(
            "t.conf:3: unknown parameter 'colour' in <match **> (@type stdout); supported: "
        ),
        "{}",
        e[0]
    );
    let e = check("<match **>\n  @type kafka\n</match>\n").unwrap_err();
    assert!(
        e[0].to_string()
            .starts_with("t.conf:2: unknown output @type 'kafka'"),
        "{}",
        e[0]
    );
    let e = check("<source>\n  @type forward\n  port http\n</source>\n").unwrap_err();
    assert!(
        e[0].to_string().starts_with("t.conf:3: parameter 'port'"),
        "{}",
        e[0]
    );
}

#[test]
fn no_effect_parameters_are_listed_once_per_name_with_every_place() {
    let c = check(
        "<source>\n @type forward\n <transport tcp>\n  cert_path /x\n </transport>\n @log_level debug\n</source>\n\
         <match **>\n @type stdout\n @log_level info\n <buffer>\n  flush_interval 1s\n </buffer>\n</match>\n",
    )
    .unwrap();
    let names: Vec<&str> = c.no_effect.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["cert_path", "@log_level", "@log_level", "<buffer>"]);
    let report = c.no_effect_report();
    assert_eq!(report.len(), 3, "{report:#?}");
    assert!(
        report[0]
            .starts_with("cert_path: only `<transport tls>` uses it (t.conf:4 in <transport tcp>)"),
        "{}",
        report[0]
    );
    assert!(
        report[1].contains(
            "t.conf:6 in <source> (@type forward); t.conf:10 in <match **> (@type stdout)"
        ),
        "{}",
        report[1]
    );
    // The contents of a no-effect section are still checked.
    let e =
        check("<match **>\n @type stdout\n <buffer>\n  flush_intervall 1s\n </buffer>\n</match>\n")
            .unwrap_err();
    assert!(
        e[0].to_string()
            .starts_with("t.conf:4: unknown parameter 'flush_intervall' in <buffer>"),
        "{}",
        e[0]
    );
    // And so is the value of a no-effect parameter.
    let e = check("<source>\n @type forward\n deny_keepalive maybe\n</source>\n").unwrap_err();
    assert!(e[0].to_string().contains("invalid boolean"), "{}", e[0]);
}

#[test]
fn a_no_effect_override_reads_as_not_given() {
    // A section a plugin shares but overrides one parameter of (none of the shipped plugins
    // does so today: the elasticsearch output honours every <buffer> parameter now).
    static SHARED: SectionSpec =
        SectionSpec::new("buffer", &[ParamSpec::integer("retry_max_times")]);
    static OVERRIDDEN: SectionSpec =
        SHARED.overrides(&[ParamSpec::integer("retry_max_times").no_effect("not here")]);
    let root = syntax::parse_str(
        "<buffer>\n  retry_max_times 3\n</buffer>\n",
        Path::new("t.conf"),
        &|_| None,
    )
    .unwrap();
    let el = &root.children[0];
    for (spec, expect) in [(&SHARED, Some(3u64)), (&OVERRIDDEN, None)] {
        let mut diag = section::Diagnostics::default();
        let mut s = section::Section::of_spec(el, "<buffer>".into(), spec, &mut diag);
        assert_eq!(s.opt::<u64>("retry_max_times"), expect);
        s.finish();
        assert!(diag.errors.is_empty(), "{:?}", diag.errors);
        assert_eq!(diag.no_effect.len(), usize::from(expect.is_none()));
    }
    // Both retrying outputs read it.
    let body = |ty: &str| {
        let server = if ty == "forward" {
            "<server>\n host h\n</server>\n"
        } else {
            ""
        };
        format!("<match **>\n @type {ty}\n {server}<buffer>\n  retry_max_times 3\n </buffer>\n</match>\n")
    };
    let c = check(&body("forward")).unwrap();
    let Directive::Match(m) = &c.root.directives[0] else {
        panic!()
    };
    let f = m
        .config::<crate::output::forward::ForwardOutputConfig>()
        .unwrap();
    assert_eq!(f.buffer.as_ref().unwrap().retry_max_times, Some(3));
    assert!(c.no_effect.is_empty());
    let c = check(&body("elasticsearch")).unwrap();
    let Directive::Match(m) = &c.root.directives[0] else {
        panic!()
    };
    let e = m
        .config::<crate::output::elasticsearch::ElasticsearchConfig>()
        .unwrap();
    assert_eq!(e.buffer.as_ref().unwrap().retry_max_times, Some(3));
    assert!(c.no_effect.is_empty());
}

/// The smallest valid body of a plugin (what its declaration does not say: required sections).
fn skeleton(directive: &str, type_name: &str) -> &'static str {
    match type_name {
        "forward" if directive == "<source>" => "",
        "parser" => "<parse>\n@type json\n</parse>\n",
        "concat" => "key log\nuse_partial_metadata true\n",
        "file" => "path /tmp/logship-test\n",
        "copy" => "<store>\n@type null\n</store>\n",
        "relabel" => "@label @L\n",
        "forward" => "<server>\nhost h\n</server>\n",
        _ => "",
    }
}

/// The sample value of every parameter declared secret: no output may show it.
const SECRET_SAMPLE: &str = "s3cret-sample-value";

/// A value of the declared type that no cross-check refuses.
fn sample(p: &ParamSpec) -> String {
    if p.name == "@label" || p.name == "timeout_label" {
        return "@L".into();
    }
    if p.secret {
        return SECRET_SAMPLE.into();
    }
    if p.name == "timekey_zone" || p.name == "timezone" {
        return "+0900".into();
    }
    // <security><client>: resolvable, valid
    if p.name == "host" {
        return "127.0.0.1".into();
    }
    if p.name == "network" {
        return "10.0.0.0/8".into();
    }
    if let DefaultValue::Value(v) = p.default {
        return if v.is_empty() {
            "\"\"".into()
        } else {
            v.replace('\n', "\\n")
        };
    }
    match p.ty {
        ParamType::String => "x".into(),
        ParamType::Bool => "true".into(),
        ParamType::Integer => "1".into(),
        ParamType::Port => "24225".into(),
        ParamType::Float => "1.5".into(),
        ParamType::Size => "1k".into(),
        ParamType::Time => "1s".into(),
        ParamType::Array => "a, b".into(),
        ParamType::Enum(words) => words[0].into(),
    }
}

/// Lines that must accompany a parameter (cross-checks between parameters).
fn companion(section: &str, param: &str) -> &'static str {
    match (section, param) {
        (_, "template_name") => "template_file /x.json\n",
        (_, "template_file") => "template_name x\n",
        ("buffer", "path") => "@type file\n",
        // a <client> names a host or a network
        ("client", "shared_key" | "users") => "network 10.0.0.0/8\n",
        ("parse", "utc" | "localtime" | "timezone") => "time_format %d/%b/%Y:%H:%M:%S\n",
        ("elasticsearch", "user") => "password p\n",
        ("elasticsearch", "password" | "password_file") => "user u\n",
        ("elasticsearch", "ca_file" | "ssl_verify" | "client_key_pass") => "scheme https\n",
        ("elasticsearch", "client_cert") => "scheme https\nclient_key /k.pem\n",
        ("elasticsearch", "client_key") => "scheme https\nclient_cert /c.pem\n",
        ("elasticsearch", "ssl_min_version") => "scheme https\nssl_max_version TLSv1_3\n",
        ("elasticsearch", "ssl_max_version") => "scheme https\nssl_min_version TLSv1_2\n",
        _ => "",
    }
}

fn required_lines(tables: &[&[ParamSpec]]) -> String {
    tables
        .iter()
        .flat_map(|t| t.iter())
        .filter(|p| p.default == DefaultValue::Required)
        .map(|p| format!("{} {}\n", p.name, sample(p)))
        .collect()
}

struct Case {
    text: String,
    name: String,
    status: Status,
    secret: bool,
}

/// One case per declared parameter and section of `spec` (inside `open` … `close`).
fn section_cases(open: &str, close: &str, spec: &SectionSpec, out: &mut Vec<Case>) {
    let arg = if spec.name == "transport" { " tls" } else { "" };
    let s_open = format!(
        "{open}<{}{arg}>\n{}",
        spec.name,
        required_lines(&[spec.overrides, spec.params])
    );
    let s_close = format!("</{}>\n{close}", spec.name);
    if spec.status != Status::Implemented {
        out.push(Case {
            text: format!("{s_open}{s_close}"),
            name: format!("<{}>", spec.name),
            status: spec.status,
            secret: false,
        });
        return;
    }
    param_cases(
        &s_open,
        &s_close,
        spec.name,
        &[spec.overrides, spec.params],
        out,
    );
    for inner in spec.sections {
        section_cases(&s_open, &s_close, inner, out);
    }
}

fn param_cases(
    open: &str,
    close: &str,
    section: &str,
    tables: &[&[ParamSpec]],
    out: &mut Vec<Case>,
) {
    let mut seen = Vec::new();
    for p in tables.iter().flat_map(|t| t.iter()) {
        if seen.contains(&p.name) || p.name == "@type" || open.contains(&format!("\n{} ", p.name)) {
            continue;
        }
        seen.push(p.name);
        out.push(Case {
            text: format!(
                "{open}{}{} {}\n{close}",
                companion(section, p.name),
                p.name,
                sample(p)
            ),
            name: p.name.to_string(),
            status: p.status,
            secret: p.secret,
        });
    }
}

fn plugin_cases<P: ?Sized>(
    directive: &str,
    common: &'static [ParamSpec],
    specs: &[&PluginSpec<P>],
    out: &mut Vec<Case>,
) {
    let label = "<label @L>\n</label>\n";
    for spec in specs {
        let open = format!(
            "{directive}\n@type {}\n{}",
            spec.type_name,
            skeleton(directive, spec.type_name)
        );
        let name = directive
            .trim_start_matches('<')
            .split([' ', '>'])
            .next()
            .unwrap();
        let close = format!("</{name}>\n{label}");
        param_cases(&open, &close, spec.type_name, &[spec.params, common], out);
        for s in spec.sections {
            // A section the skeleton already has is tested in its place.
            let bare = format!("{directive}\n@type {}\n", spec.type_name);
            let in_skeleton = open.contains(&format!("<{}", s.name));
            section_cases(if in_skeleton { &bare } else { &open }, &close, s, out);
        }
    }
}

#[test]
fn every_declared_parameter_is_accepted_and_reported_as_declared() {
    let mut cases = Vec::new();
    plugin_cases(
        "<source>",
        registry::SOURCE_COMMON,
        registry::SOURCES,
        &mut cases,
    );
    plugin_cases(
        "<filter **>",
        registry::FILTER_COMMON,
        registry::FILTERS,
        &mut cases,
    );
    plugin_cases(
        "<match **>",
        registry::OUTPUT_COMMON,
        registry::OUTPUTS,
        &mut cases,
    );
    param_cases(
        "<system>\n",
        "</system>\n",
        "system",
        &[system::SECTION.params],
        &mut cases,
    );
    for s in system::SECTION.sections {
        section_cases("<system>\n", "</system>\n", s, &mut cases);
    }
    assert!(cases.len() > 250, "{}", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let r = check(&c.text);
        let ok = match (&r, c.status) {
            (Ok(cfg), Status::Implemented) => cfg.no_effect.iter().all(|n| n.name != c.name),
            (Ok(cfg), Status::NoEffect(reason)) => cfg
                .no_effect
                .iter()
                .any(|n| n.name == c.name && n.reason == reason),
            (Err(e), Status::NotSupported(reason)) => e
                .iter()
                .any(|e| e.message.contains(&c.name) && e.message.contains(reason)),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{} declared {:?}:\n{}=> {r:?}",
                c.name, c.status, c.text
            ));
        }
        // Required secrets are in the text of every case of their section.
        if let (Ok(cfg), true) = (&r, c.text.contains(SECRET_SAMPLE)) {
            let shown = format!("{cfg:?}\n{}\n{:?}", cfg.describe(), cfg.no_effect_report());
            if shown.contains(SECRET_SAMPLE) {
                failures.push(format!("{} is declared secret but shown:\n{shown}", c.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(cases.iter().filter(|c| c.secret).count() >= 7);
}

/// Every declared parameter, of every plugin, section and `<system>`.
fn every_param() -> Vec<ParamSpec> {
    fn all(tables: &[&[ParamSpec]], sections: &[&SectionSpec], out: &mut Vec<ParamSpec>) {
        out.extend(tables.iter().flat_map(|t| t.iter()).copied());
        for s in sections {
            all(&[s.overrides, s.params], s.sections, out);
        }
    }
    let mut params = Vec::new();
    for s in registry::SOURCES {
        all(
            &[s.params, registry::SOURCE_COMMON],
            s.sections,
            &mut params,
        );
    }
    for s in registry::FILTERS {
        all(
            &[s.params, registry::FILTER_COMMON],
            s.sections,
            &mut params,
        );
    }
    for s in registry::OUTPUTS {
        all(
            &[s.params, registry::OUTPUT_COMMON],
            s.sections,
            &mut params,
        );
    }
    all(&[], &[&system::SECTION], &mut params);
    params
}

/// A password, key or passphrase declared as a plain string would be shown by `Debug` and
/// could reach a log line: every parameter named like one is declared secret.
#[test]
fn passwords_keys_and_passphrases_are_declared_secret() {
    let secret_like = |n: &str| {
        ["password", "passphrase", "_pass", "shared_key", "api_key"]
            .iter()
            .any(|s| n.ends_with(s))
    };
    let plain: Vec<&str> = every_param()
        .iter()
        .filter(|p| secret_like(p.name) && !p.secret)
        .map(|p| p.name)
        .collect();
    assert!(plain.is_empty(), "declared as plain strings: {plain:?}");
}

#[test]
fn declared_defaults_parse_as_their_type() {
    for p in every_param() {
        if let DefaultValue::Value(v) = p.default {
            assert!(
                values::parse_value(p.ty, v).is_ok(),
                "default {v:?} of {} is not a {:?}",
                p.name,
                p.ty
            );
        }
        if let Status::NoEffect(r) | Status::NotSupported(r) = p.status {
            assert!(!r.is_empty(), "{} has no reason", p.name);
        }
    }
}

const BEGIN: &str = "<!-- BEGIN parameter tables: generated from the declarations (LOGSHIP_UPDATE_DOCS=1 cargo test -p logship --lib config::tests::docs) -->";
const END: &str = "<!-- END parameter tables -->";

/// `docs/logship.md`'s parameter tables are the declarations, rendered; set
/// `LOGSHIP_UPDATE_DOCS=1` to rewrite them after changing a declaration.
#[test]
fn docs_parameter_tables_match_the_declarations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/logship.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("{} lacks the markers {BEGIN} … {END}", path.display());
    };
    let generated = format!("{BEGIN}\n{}\n", registry::markdown());
    if doc[b..e] == generated {
        return;
    }
    if std::env::var_os("LOGSHIP_UPDATE_DOCS").is_some() {
        let updated = format!("{}{generated}{}", &doc[..b], &doc[e..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    let first_diff = doc[b..e]
        .lines()
        .zip(generated.lines())
        .find(|(a, b)| a != b);
    panic!(
        "docs/logship.md's parameter tables differ from the declarations (first difference: {first_diff:?}); \
         run LOGSHIP_UPDATE_DOCS=1 cargo test -p logship --lib config::tests::docs"
    );
}

/// The first `<match>`'s typed config.
fn first_match<T: 'static + Clone>(c: &Config) -> T {
    let Directive::Match(m) = &c.root.directives[0] else {
        panic!("not a match")
    };
    m.config::<T>().expect("another type").clone()
}

fn errors(t: &str) -> Vec<String> {
    check(t)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn use_default_takes_the_declared_default_and_use_nil_unsets() {
    use crate::forward::source::ForwardSourceConfig;
    use crate::output::elasticsearch::ElasticsearchConfig;
    let c = check(
        "<system>\n process_name \"#{use_nil}\"\n</system>\n\
         <source>\n @type forward\n port \"#{ENV['LOGSHIP_T_UNSET'] || use_default}\"\n linger_timeout \"#{use_default}\"\n chunk_size_warn_limit \"#{use_nil}\"\n</source>\n\
         <match **>\n @type elasticsearch\n host \"#{ENV['LOGSHIP_T_UNSET'] || 'es'}\"\n user \"#{ENV['LOGSHIP_T_UNSET'] || use_default}\"\n\
         template_file \"#{ENV['LOGSHIP_T_UNSET'] || use_nil}\"\n template_overwrite \"#{use_default}\"\n\
         <buffer>\n  chunk_limit_size \"#{use_default}\"\n  total_limit_size \"#{use_nil}\"\n </buffer>\n</match>\n",
    )
    .unwrap();
    let f = c.sources[0].config::<ForwardSourceConfig>().unwrap();
    assert_eq!(f.port, 24224);
    // No declared default: use_default and use_nil both leave it unset.
    assert_eq!((f.linger_timeout, f.chunk_size_warn_limit), (None, None));
    let es: ElasticsearchConfig = first_match(&c);
    assert_eq!(es.hosts, ["es:9200"]);
    assert_eq!((es.user, es.template_file), (None, None));
    assert!(!es.template_overwrite);
    let b = es.buffer.unwrap();
    // Declared default 8m: use_default gives it, use_nil leaves the parameter unset.
    assert_eq!(b.chunk_limit_size, Some(8 << 20));
    assert_eq!(b.total_limit_size, None);
    // Lines that give nothing are not "no effect" lines.
    assert!(c.no_effect.is_empty(), "{:?}", c.no_effect);
}

#[test]
fn use_default_and_use_nil_errors_name_the_line() {
    let e = errors(
        "<source>\n @type forward\n bind \"#{ENV['LOGSHIP_T_UNSET'] || use_nil}\"\n made_up \"#{use_default}\"\n</source>\n\
         <match **>\n @type forward\n <server>\n  host \"#{use_default}\"\n </server>\n <server>\n  host \"#{use_nil}\"\n </server>\n</match>\n\
         <filter **>\n @type record_transformer\n <record>\n  f \"#{use_nil}\"\n </record>\n</filter>\n",
    );
    let expected = [
        "t.conf:3: parameter 'bind' in <source> (@type forward) always has a value: use_nil cannot unset it (use_default gives its default, \"0.0.0.0\")",
        "t.conf:4: unknown parameter 'made_up' in <source> (@type forward); supported: ",
        "t.conf:9: parameter 'host' in <server> has no default: use_default cannot stand for it",
        "t.conf:12: parameter 'host' in <server> is required: use_nil cannot unset it",
        "t.conf:18: field 'f' in <record> needs a value, not use_default or use_nil",
    ];
    assert_eq!(e.len(), expected.len(), "{e:#?}");
    for x in expected {
        assert!(e.iter().any(|m| m.starts_with(x)), "no {x:?} in {e:#?}");
    }
}

#[test]
fn v012_buffer_parameters_are_read_in_their_v1_form_with_one_warning_each() {
    use crate::output::copy::CopyConfig;
    use crate::output::elasticsearch::ElasticsearchConfig;
    // The Fluentd docs' EFK guide shape.
    let c = check(
        "<match *.**>\n @type copy\n <store>\n  @type elasticsearch\n  type_name access_log\n  flush_interval 1s\n  retry_limit 5\n  disable_retry_limit false\n\
         buffer_queue_full_action exception\n </store>\n <store>\n  @type stdout\n  flush_interval 1s\n </store>\n</match>\n",
    )
    .unwrap();
    let copy: CopyConfig = first_match(&c);
    let es = copy.stores[0]
        .plugin
        .as_any()
        .downcast_ref::<ElasticsearchConfig>()
        .unwrap();
    let b = es.buffer.as_ref().unwrap();
    assert_eq!(b.flush_interval, std::time::Duration::from_secs(1));
    assert_eq!(
        b.retry_max_times,
        Some(5),
        "retry_limit 5 is retry_max_times 5"
    );
    assert!(!b.retry_forever);
    assert_eq!(b.overflow_action, "throw_exception");
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 5, "{w:#?}");
    assert!(w[0].starts_with("t.conf:6: warning: 'flush_interval' in <store> (@type elasticsearch) is Fluentd v0.12's form: read as 'flush_interval 1s' in <buffer>"), "{}", w[0]);
    assert!(
        w[4].starts_with("t.conf:13: warning: 'flush_interval' in <store> (@type stdout)"),
        "{}",
        w[4]
    );
    // The stdout output has no buffer; type_name is Elasticsearch 6's: each is named, with
    // where it was written. (retry_max_times, from retry_limit, is implemented.)
    let report = c.no_effect_report().join("\n");
    assert!(!report.contains("retry_max_times"), "{report}");
    for x in [
        "type_name: logship never sends a document `_type`",
        "<buffer>: each batch is written",
        "t.conf:13 in <store> (@type stdout)",
    ] {
        assert!(report.contains(x), "no {x:?} in\n{report}");
    }
}

#[test]
fn v012_buffer_parameters_clash_or_stay_unknown() {
    let e = errors("<match **>\n @type forward\n <server>\n  host h\n </server>\n num_threads 2\n <buffer>\n  flush_thread_count 4\n </buffer>\n</match>\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("t.conf:6: 'num_threads' in <match **> (@type forward) is Fluentd v0.12's form of <buffer> 'flush_thread_count', which is also given at t.conf:8"), "{}", e[0]);
    // An output without a <buffer> section has no buffer parameters, in any form.
    let e = errors("<match **>\n @type relabel\n @label @x\n flush_interval 1s\n</match>\n<label @x>\n</label>\n");
    assert!(
        e[0].starts_with(
            "t.conf:4: unknown parameter 'flush_interval' in <match **> (@type relabel)"
        ),
        "{}",
        e[0]
    );
    // A value is type-checked at its own line, under its v1 name.
    let e = errors("<match **>\n @type elasticsearch\n buffer_chunk_limit lots\n</match>\n");
    assert!(
        e[0].starts_with(
            "t.conf:3: parameter 'chunk_limit_size' in <buffer> (@type memory): invalid size"
        ),
        "{}",
        e[0]
    );
}
