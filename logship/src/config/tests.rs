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
        "<source>\n @type forward\n linger_timeout 2s\n @log_level debug\n</source>\n\
         <match **>\n @type stdout\n @log_level info\n <buffer>\n  flush_interval 1s\n </buffer>\n</match>\n",
    )
    .unwrap();
    let names: Vec<&str> = c.no_effect.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["linger_timeout", "@log_level", "@log_level", "<buffer>"]
    );
    let report = c.no_effect_report();
    assert_eq!(report.len(), 3, "{report:#?}");
    assert!(
        report[0]
            .starts_with("linger_timeout: not implemented (t.conf:3 in <source> (@type forward))"),
        "{}",
        report[0]
    );
    assert!(
        report[1].contains(
            "t.conf:4 in <source> (@type forward); t.conf:8 in <match **> (@type stdout)"
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

/// A value of the declared type that no cross-check refuses.
fn sample(p: &ParamSpec) -> String {
    if p.name == "@label" || p.name == "timeout_label" {
        return "@L".into();
    }
    if p.name == "timekey_zone" {
        return "+0900".into();
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
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn declared_defaults_parse_as_their_type() {
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
    for p in params {
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
