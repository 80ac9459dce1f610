//! Fluentd-syntax configuration.
//!
//! Two layers:
//! - [`syntax`]: the generic tree ([`Element`] with name, arg, params carrying file:line,
//!   children), including `@include`, quoting, multi-line values and `#{ENV[...]}`.
//! - this module: typed plugin configs ([`Config`]): sources, filters, outputs with their
//!   parameters parsed and checked. An unknown `@type`, parameter or section, or a value of
//!   the wrong type, is an error carrying file:line and, for unknown names, the list of what is
//!   supported. All errors of a file are collected, not just the first.

pub mod syntax;
pub mod values;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

pub use syntax::{ConfigError, Element, Loc, Param};

use crate::pipeline::pattern::TagPattern;

/// The default configuration of `logship run` without `-c`: the same as `fluentd/demo.conf`.
pub const DEFAULT_CONFIG: &str = "<source>\n  @type forward\n  port 24224\n  bind 127.0.0.1\n</source>\n\n<match **>\n  @type stdout\n</match>\n";

/// A whole, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub system: SystemConfig,
    pub sources: Vec<SourceConfig>,
    /// Filters and matches outside any `<label>`.
    pub root: LabelConfig,
    /// `<label @NAME>` sections by name (with the `@`).
    pub labels: BTreeMap<String, LabelConfig>,
}

/// `<system>`.
#[derive(Debug, Clone, Default)]
pub struct SystemConfig {
    pub log_level: Option<String>,
    pub process_name: Option<String>,
    pub workers: u32,
}

/// The directives of one label (or of the root), in config order.
#[derive(Debug, Clone, Default)]
pub struct LabelConfig {
    pub name: String,
    pub directives: Vec<Directive>,
}

/// A `<filter>` or a `<match>`.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Directive {
    Filter(FilterDirective),
    Match(MatchDirective),
}

#[derive(Debug, Clone)]
pub struct FilterDirective {
    pub pattern: TagPattern,
    pub id: Option<String>,
    pub plugin: FilterConfig,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct MatchDirective {
    pub pattern: TagPattern,
    pub id: Option<String>,
    pub plugin: OutputConfig,
    pub loc: Loc,
}

/// A `<source>`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: Option<String>,
    /// `@label @X`: route into that label instead of the root.
    pub label: Option<String>,
    pub plugin: SourcePlugin,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum SourcePlugin {
    Forward(ForwardSourceConfig),
    /// `@type prometheus` or `@type monitor_agent`: the monitoring HTTP endpoint.
    Monitor(MonitorSourceConfig),
}

impl SourcePlugin {
    /// The `@type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourcePlugin::Forward(_) => "forward",
            SourcePlugin::Monitor(m) => m.kind.type_name(),
        }
    }
}

/// Which Fluentd plugin a monitor source is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorKind {
    /// fluent-plugin-prometheus's `<source> @type prometheus` (port 24231).
    Prometheus,
    /// Fluentd's `<source> @type monitor_agent` (port 24220, `/api/plugins.json`).
    MonitorAgent,
}

impl MonitorKind {
    pub fn type_name(self) -> &'static str {
        match self {
            MonitorKind::Prometheus => "prometheus",
            MonitorKind::MonitorAgent => "monitor_agent",
        }
    }
}

/// `<source> @type prometheus` / `@type monitor_agent`: serves `/metrics` (Prometheus text
/// format), `/healthz` and, for `monitor_agent`, `/api/plugins.json`. See `docs/metrics.md`.
#[derive(Debug, Clone)]
pub struct MonitorSourceConfig {
    pub kind: MonitorKind,
    pub bind: String,
    pub port: u16,
    /// Path of the Prometheus exposition (`metrics_path`, default `/metrics`).
    pub metrics_path: String,
    /// `aggregated_metrics_path` (prometheus only): the same exposition (one worker).
    pub aggregated_metrics_path: Option<String>,
    /// logship's own: an output whose requests have only failed for this long makes
    /// `/healthz` answer 503 (default 60 s).
    pub health_failing_after: Duration,
}

/// `<source> @type forward` (Fluentd's in_forward parameters).
#[derive(Debug, Clone)]
pub struct ForwardSourceConfig {
    pub bind: String,
    pub port: u16,
    pub linger_timeout: Duration,
    pub chunk_size_limit: Option<u64>,
    pub chunk_size_warn_limit: Option<u64>,
    pub skip_invalid_event: bool,
    pub source_address_key: Option<String>,
    pub source_hostname_key: Option<String>,
    pub resolve_hostname: bool,
    pub deny_keepalive: bool,
    pub send_keepalive_packet: bool,
    pub tag: Option<String>,
    pub add_tag_prefix: Option<String>,
    pub read_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub security: Option<ForwardSecurity>,
    pub tls: Option<TlsConfig>,
}

/// `<security>` of in_forward.
#[derive(Debug, Clone)]
pub struct ForwardSecurity {
    pub self_hostname: String,
    pub shared_key: String,
    pub user_auth: bool,
    pub allow_anonymous_source: bool,
    pub users: Vec<(String, String)>,
}

/// `<transport tls>`.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_path: Option<String>,
    pub private_key_path: Option<String>,
    pub private_key_passphrase: Option<String>,
    pub ca_path: Option<String>,
    pub version: Option<String>,
    pub insecure: bool,
    pub client_cert_auth: bool,
}

/// Filter plugins.
#[derive(Debug, Clone)]
pub enum FilterConfig {
    Parser(ParserFilterConfig),
    RecordTransformer(RecordTransformerConfig),
    Concat(ConcatConfig),
}

/// `@type parser`.
#[derive(Debug, Clone)]
pub struct ParserFilterConfig {
    pub key_name: String,
    pub reserve_data: bool,
    pub reserve_time: bool,
    pub remove_key_name_field: bool,
    pub inject_key_prefix: Option<String>,
    pub hash_value_field: Option<String>,
    pub emit_invalid_record_to_error: bool,
    pub parse: ParseConfig,
}

/// `<parse>` (only `@type json`).
#[derive(Debug, Clone)]
pub struct ParseConfig {
    pub time_key: Option<String>,
    pub keep_time_key: bool,
}

/// `@type record_transformer`.
#[derive(Debug, Clone)]
pub struct RecordTransformerConfig {
    pub record: Vec<(String, String)>,
    pub remove_keys: Vec<String>,
    pub keep_keys: Vec<String>,
    pub renew_record: bool,
}

/// `@type concat` with `use_partial_metadata true` (or `@type docker_partial`).
#[derive(Debug, Clone)]
pub struct ConcatConfig {
    pub key: String,
    pub separator: String,
    pub flush_interval: Duration,
    pub keep_partial_metadata: bool,
    pub use_first_timestamp: bool,
    pub stream_identity_key: Option<String>,
    pub timeout_label: Option<String>,
}

/// Output plugins.
#[derive(Debug, Clone)]
pub enum OutputConfig {
    Stdout(StdoutConfig),
    Null,
    File(FileOutputConfig),
    /// `<store>`s with their `@id`.
    Copy(Vec<(Option<String>, OutputConfig)>),
    Relabel(String),
    /// `output::elasticsearch` (memory or file buffer).
    Elasticsearch(Box<ElasticsearchConfig>),
    /// `output::forward` (see docs/forward-output.md).
    Forward(ForwardOutputConfig),
}

impl OutputConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            OutputConfig::Stdout(_) => "stdout",
            OutputConfig::Null => "null",
            OutputConfig::File(_) => "file",
            OutputConfig::Copy(_) => "copy",
            OutputConfig::Relabel(_) => "relabel",
            OutputConfig::Elasticsearch(_) => "elasticsearch",
            OutputConfig::Forward(_) => "forward",
        }
    }
}

/// How a record is written as a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// `TIME TAG: JSON` (out_stdout's default).
    Stdout,
    /// The record as JSON only.
    Json,
    /// `TIME<TAB>TAG<TAB>JSON` (out_file's default).
    OutFile,
}

/// Key under which stdout/file lines show an event's non-empty Forward v1.5 metadata
/// (`metadata_key`; an empty value hides it).
pub const DEFAULT_LINE_METADATA_KEY: &str = "_metadata";

#[derive(Debug, Clone)]
pub struct StdoutConfig {
    pub format: LineFormat,
    /// `metadata_key`: see [`DEFAULT_LINE_METADATA_KEY`]; `None` hides metadata.
    pub metadata_key: Option<String>,
    pub buffer: Option<BufferConfig>,
}

/// `@type file`.
#[derive(Debug, Clone)]
pub struct FileOutputConfig {
    pub path: String,
    pub append: bool,
    pub add_path_suffix: bool,
    pub path_suffix: String,
    pub format: LineFormat,
    /// `metadata_key`: see [`DEFAULT_LINE_METADATA_KEY`]; `None` hides metadata.
    pub metadata_key: Option<String>,
    pub buffer: Option<BufferConfig>,
}

/// `<buffer CHUNK_KEYS>`: used by the elasticsearch output (memory or file, see
/// `crate::buffer`); parsed and checked elsewhere.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    pub chunk_keys: Vec<String>,
    pub file_path: Option<String>,
    pub is_file: bool,
    pub timekey: Option<Duration>,
    pub timekey_wait: Option<Duration>,
    pub chunk_limit_size: Option<u64>,
    pub total_limit_size: Option<u64>,
    pub chunk_limit_records: Option<u64>,
    pub flush_mode: String,
    pub flush_interval: Duration,
    pub flush_at_shutdown: Option<bool>,
    pub flush_thread_count: u32,
    pub retry_type: String,
    pub retry_wait: Duration,
    pub retry_max_interval: Option<Duration>,
    pub retry_forever: bool,
    pub retry_max_times: Option<u64>,
    pub retry_timeout: Duration,
    pub overflow_action: String,
}

/// `@type elasticsearch` (fluent-plugin-elasticsearch's main parameters).
#[derive(Debug, Clone)]
pub struct ElasticsearchConfig {
    pub hosts: Vec<String>,
    pub scheme: String,
    pub path: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub index_name: String,
    pub logstash_format: bool,
    pub logstash_prefix: String,
    pub logstash_dateformat: String,
    pub include_tag_key: bool,
    pub tag_key: String,
    pub id_key: Option<String>,
    /// `metadata_key`: the document gets the event's non-empty Forward v1.5 metadata under
    /// this key (off by default).
    pub metadata_key: Option<String>,
    /// `time_key`: a record field whose time becomes `@timestamp` (and the logstash index
    /// date) when `@timestamp` is written (`logstash_format` or `include_timestamp`).
    pub time_key: Option<String>,
    /// `time_key_format`: strptime format of the `time_key` value (else ISO 8601 or epoch).
    pub time_key_format: Option<String>,
    /// `time_key_exclude_timestamp`: the `time_key` value dates the index but `@timestamp`
    /// is not added.
    pub time_key_exclude_timestamp: bool,
    /// `include_timestamp`: add `@timestamp` without `logstash_format`.
    pub include_timestamp: bool,
    /// `target_index_key`: a record field (dotted path) naming the index; removed from the
    /// document.
    pub target_index_key: Option<String>,
    /// `log_es_400_reason`: log the error type and reason of every document rejected with 400.
    pub log_es_400_reason: bool,
    /// `reconnect_on_error`: after any failed request, drop pooled connections and go back
    /// to the configured hosts (and detect the version again).
    pub reconnect_on_error: bool,
    /// `reload_connections` / `reload_after`: replace the host list with the cluster's HTTP
    /// nodes (`GET _nodes/http`) every `reload_after` requests (default 10,000).
    pub reload_connections: bool,
    pub reload_after: Option<u64>,
    /// `reload_on_failure`: discover the nodes again after a request failed on every host.
    pub reload_on_failure: bool,
    /// `resurrect_after`: a host that failed is skipped for this long (doubling per failure).
    pub resurrect_after: Duration,
    /// `verify_es_version_at_startup`: `GET /` before the first request to learn the engine
    /// and version; otherwise `default_elasticsearch_version` is assumed.
    pub verify_es_version_at_startup: bool,
    pub default_elasticsearch_version: u32,
    pub request_timeout: Duration,
    pub ssl_verify: bool,
    pub suppress_type_name: bool,
    pub logstash_prefix_separator: String,
    pub utc_index: bool,
    /// `create` (default) or `index`.
    pub write_operation: String,
    pub template_name: Option<String>,
    pub template_file: Option<String>,
    pub template_overwrite: bool,
    /// Largest `_bulk` body in bytes before a chunk is split into several requests.
    pub bulk_message_request_threshold: Option<u64>,
    /// gzip level 0..=9 for request bodies; `None` = no compression.
    pub compression_level: Option<u32>,
    /// JSON-lines file for events Elasticsearch rejected (or `<secondary> @type file path`).
    pub dead_letter_path: Option<String>,
    pub buffer: Option<BufferConfig>,
}

/// `@type forward` output.
#[derive(Debug, Clone)]
pub struct ForwardOutputConfig {
    pub servers: Vec<ForwardServerTarget>,
    pub require_ack_response: bool,
    pub ack_response_timeout: Duration,
    pub send_timeout: Duration,
    pub connect_timeout: Option<Duration>,
    pub heartbeat_type: String,
    pub compress: String,
    /// `send_metadata` (default false): re-send Forward v1.5 metadata to the next hop. Off by
    /// default because Fluentd < 1.19 and Fluent Bit < 5 reject `[[time, metadata], record]`.
    pub send_metadata: bool,
    pub shared_key: Option<String>,
    pub self_hostname: Option<String>,
    pub buffer: Option<BufferConfig>,
    /// `transport tls`.
    pub tls: bool,
    /// PEM file with the CA certificates to trust (`tls_cert_path`).
    pub tls_cert_path: Option<String>,
    pub tls_verify_hostname: bool,
    pub tls_insecure_mode: bool,
    /// Time between heartbeats (`heartbeat_interval`, default 1s).
    pub heartbeat_interval: Duration,
    /// How long a server must answer heartbeats before it takes traffic again (default 10s).
    pub recover_wait: Duration,
}

#[derive(Debug, Clone)]
pub struct ForwardServerTarget {
    pub host: String,
    pub port: u16,
    pub name: Option<String>,
    pub weight: u32,
    pub standby: bool,
    pub shared_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Config {
    /// Reads, parses and checks the file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let root = syntax::parse_file(path).map_err(|e| vec![e])?;
        Config::from_element(&root)
    }

    /// Parses and checks `text` as if it were the file `path`.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        let env = |n: &str| std::env::var(n).ok();
        let root = syntax::parse_str(text, path, &env).map_err(|e| vec![e])?;
        Config::from_element(&root)
    }

    /// Checks a parsed tree.
    pub fn from_element(root: &Element) -> Result<Config, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut cfg = Config {
            system: SystemConfig {
                workers: 1,
                ..Default::default()
            },
            sources: Vec::new(),
            root: LabelConfig::default(),
            labels: BTreeMap::new(),
        };
        for p in &root.params {
            errors.push(ConfigError::at(
                &p.loc,
                format!("parameter '{}' outside of any section", p.key),
            ));
        }
        for el in &root.children {
            match el.name.as_str() {
                "system" => cfg.system = system(el, &mut errors),
                "source" => {
                    if let Some(s) = source(el, &mut errors) {
                        cfg.sources.push(s);
                    }
                }
                "filter" | "match" => {
                    if let Some(d) = directive(el, &mut errors) {
                        cfg.root.directives.push(d);
                    }
                }
                "label" => {
                    let name = el.arg.trim().to_string();
                    if !name.starts_with('@') || name.contains(char::is_whitespace) {
                        errors.push(ConfigError::at(&el.loc, format!("label name must be one word starting with '@', got {name:?}")));
                        continue;
                    }
                    if cfg.labels.contains_key(&name) {
                        errors.push(ConfigError::at(&el.loc, format!("label {name} is defined twice")));
                        continue;
                    }
                    let mut label = LabelConfig { name: name.clone(), directives: Vec::new() };
                    for p in &el.params {
                        errors.push(ConfigError::at(&p.loc, format!("unknown parameter '{}' in <label>", p.key)));
                    }
                    for c in &el.children {
                        match c.name.as_str() {
                            "filter" | "match" => {
                                if let Some(d) = directive(c, &mut errors) {
                                    label.directives.push(d);
                                }
                            }
                            other => errors.push(ConfigError::at(
                                &c.loc,
                                format!("unknown section <{other}> in <label>; supported: <filter>, <match>"),
                            )),
                        }
                    }
                    cfg.labels.insert(name, label);
                }
                "worker" => errors.push(ConfigError::at(&el.loc, "<worker> sections are not supported (logship runs one worker)")),
                other => errors.push(ConfigError::at(
                    &el.loc,
                    format!("unknown top-level section <{other}>; supported: <system>, <source>, <filter>, <match>, <label>"),
                )),
            }
        }
        // Every @label reference must exist.
        let mut refs: Vec<(&str, &Loc)> = cfg
            .sources
            .iter()
            .filter_map(|s| s.label.as_deref().map(|l| (l, &s.loc)))
            .collect();
        let mut relabels = Vec::new();
        for d in cfg
            .root
            .directives
            .iter()
            .chain(cfg.labels.values().flat_map(|l| l.directives.iter()))
        {
            match d {
                Directive::Match(m) => collect_relabels(&m.plugin, &m.loc, &mut relabels),
                Directive::Filter(FilterDirective {
                    plugin: FilterConfig::Concat(c),
                    loc,
                    ..
                }) => {
                    if let Some(l) = &c.timeout_label {
                        relabels.push((l.clone(), loc.clone()));
                    }
                }
                _ => {}
            }
        }
        refs.extend(relabels.iter().map(|(l, loc)| (l.as_str(), loc)));
        for (l, loc) in refs {
            if !cfg.labels.contains_key(l) {
                let known: Vec<&str> = cfg.labels.keys().map(String::as_str).collect();
                errors.push(ConfigError::at(
                    loc,
                    format!(
                        "@label {l} refers to a label that is not defined; defined labels: {}",
                        list_or_none(&known)
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }

    /// A human-readable description of the effective pipeline (for `check-config`).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "sources:");
        for src in &self.sources {
            let f = match &src.plugin {
                SourcePlugin::Forward(f) => f,
                SourcePlugin::Monitor(m) => {
                    let _ = writeln!(
                        s,
                        "  {} {}:{} (GET {}, /healthz{})   [{}]",
                        m.kind.type_name(),
                        m.bind,
                        m.port,
                        m.metrics_path,
                        if m.kind == MonitorKind::MonitorAgent {
                            ", /api/plugins.json"
                        } else {
                            ""
                        },
                        src.loc
                    );
                    continue;
                }
            };
            let _ = write!(s, "  forward {}:{}", f.bind, f.port);
            if f.security.is_some() {
                let _ = write!(s, " (shared_key handshake)");
            }
            if f.tls.is_some() {
                let _ = write!(s, " (tls)");
            }
            let _ = writeln!(
                s,
                " -> {}   [{}]",
                src.label.as_deref().unwrap_or("root"),
                src.loc
            );
        }
        let mut describe_label = |name: &str, l: &LabelConfig| {
            let _ = writeln!(s, "{name}:");
            if l.directives.is_empty() {
                let _ = writeln!(s, "  (no directives)");
            }
            for (i, d) in l.directives.iter().enumerate() {
                match d {
                    Directive::Filter(f) => {
                        let t = match &f.plugin {
                            FilterConfig::Parser(p) => format!(
                                "parser key_name={} reserve_data={}",
                                p.key_name, p.reserve_data
                            ),
                            FilterConfig::RecordTransformer(r) => {
                                let keys: Vec<&str> =
                                    r.record.iter().map(|(k, _)| k.as_str()).collect();
                                format!("record_transformer record=[{}]", keys.join(", "))
                            }
                            FilterConfig::Concat(c) => format!(
                                "concat key={} flush_interval={}s",
                                c.key,
                                c.flush_interval.as_secs_f64()
                            ),
                        };
                        let _ = writeln!(
                            s,
                            "  {:>2}. filter {} -> {}   [{}]",
                            i + 1,
                            f.pattern,
                            t,
                            f.loc
                        );
                    }
                    Directive::Match(m) => {
                        let _ = writeln!(
                            s,
                            "  {:>2}. match  {} -> {}   [{}]",
                            i + 1,
                            m.pattern,
                            describe_output(&m.plugin),
                            m.loc
                        );
                    }
                }
            }
        };
        describe_label("routes (root)", &self.root);
        for (name, l) in &self.labels {
            describe_label(&format!("routes (label {name})"), l);
        }
        s
    }
}

fn describe_output(o: &OutputConfig) -> String {
    match o {
        OutputConfig::Stdout(c) => format!(
            "stdout ({})",
            match c.format {
                LineFormat::Json => "json",
                _ => "fluentd line format",
            }
        ),
        OutputConfig::Null => "null".into(),
        OutputConfig::File(f) => format!("file path={}", f.path),
        OutputConfig::Copy(v) => format!(
            "copy [{}]",
            v.iter()
                .map(|(_, o)| describe_output(o))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        OutputConfig::Relabel(l) => format!("relabel -> {l}"),
        OutputConfig::Elasticsearch(e) => format!(
            "elasticsearch hosts={} index={}{}",
            e.hosts.join(","),
            if e.logstash_format {
                format!(
                    "{}{}{}",
                    e.logstash_prefix, e.logstash_prefix_separator, e.logstash_dateformat
                )
            } else {
                e.index_name.clone()
            },
            match e.buffer.as_ref() {
                Some(b) if b.is_file => format!(
                    " (file buffer {})",
                    b.file_path.as_deref().unwrap_or_default()
                ),
                _ => String::new(),
            }
        ),
        OutputConfig::Forward(f) => format!(
            "forward servers={}",
            f.servers
                .iter()
                .map(|s| format!(
                    "{}:{}{}",
                    s.host,
                    s.port,
                    if s.standby { " (standby)" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn collect_relabels(o: &OutputConfig, loc: &Loc, out: &mut Vec<(String, Loc)>) {
    match o {
        OutputConfig::Relabel(l) => out.push((l.clone(), loc.clone())),
        OutputConfig::Copy(v) => v.iter().for_each(|(_, x)| collect_relabels(x, loc, out)),
        _ => {}
    }
}

fn list_or_none(v: &[&str]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

/// Parameter access for one section, recording which names are supported so that leftovers
/// can be reported as unknown.
struct Section<'a, 'e> {
    el: &'a Element,
    what: String,
    known: Vec<&'static str>,
    known_children: Vec<&'static str>,
    errors: &'e mut Vec<ConfigError>,
}

const COMMON: &[&str] = &["@type", "@id", "@log_level", "@label"];

impl<'a, 'e> Section<'a, 'e> {
    fn new(el: &'a Element, what: String, errors: &'e mut Vec<ConfigError>) -> Self {
        Self {
            el,
            what,
            known: Vec::new(),
            known_children: Vec::new(),
            errors,
        }
    }
    fn raw(&mut self, name: &'static str) -> Option<&'a Param> {
        self.known.push(name);
        self.el.param(name)
    }
    fn parsed<T>(
        &mut self,
        name: &'static str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let p = self.raw(name)?;
        match f(&p.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(ConfigError::at(
                    &p.loc,
                    format!("parameter '{name}' in {}: {e}", self.what),
                ));
                None
            }
        }
    }
    fn string(&mut self, name: &'static str) -> Option<String> {
        self.raw(name).map(|p| p.value.clone())
    }
    fn string_or(&mut self, name: &'static str, d: &str) -> String {
        self.string(name).unwrap_or_else(|| d.to_string())
    }
    fn required(&mut self, name: &'static str) -> String {
        match self.string(name) {
            Some(v) => v,
            None => {
                self.errors.push(ConfigError::at(
                    &self.el.loc,
                    format!("missing required parameter '{name}' in {}", self.what),
                ));
                String::new()
            }
        }
    }
    fn bool(&mut self, name: &'static str, d: bool) -> bool {
        self.parsed(name, values::parse_bool).unwrap_or(d)
    }
    fn int<T: std::str::FromStr>(&mut self, name: &'static str, kind: &'static str) -> Option<T> {
        self.parsed(name, |s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| format!("invalid {kind} {s:?}"))
        })
    }
    fn size(&mut self, name: &'static str) -> Option<u64> {
        self.parsed(name, values::parse_size)
    }
    fn time(&mut self, name: &'static str) -> Option<Duration> {
        self.parsed(name, values::parse_time)
    }
    fn list(&mut self, name: &'static str) -> Vec<String> {
        self.parsed(name, values::parse_list).unwrap_or_default()
    }
    fn one_of(&mut self, name: &'static str, allowed: &[&str], d: &str) -> String {
        let allowed_s = allowed.join(", ");
        self.parsed(name, |s| {
            if allowed.contains(&s.trim()) {
                Ok(s.trim().to_string())
            } else {
                Err(format!("invalid value {s:?}; supported: {allowed_s}"))
            }
        })
        .unwrap_or_else(|| d.to_string())
    }
    fn children(&mut self, name: &'static str) -> Vec<&'a Element> {
        self.known_children.push(name);
        self.el.children.iter().filter(|c| c.name == name).collect()
    }
    fn child(&mut self, name: &'static str) -> Option<&'a Element> {
        let v = self.children(name);
        if v.len() > 1 {
            self.errors.push(ConfigError::at(
                &v[1].loc,
                format!("only one <{name}> section is allowed in {}", self.what),
            ));
        }
        v.first().copied()
    }
    fn error(&mut self, loc: &Loc, msg: String) {
        self.errors.push(ConfigError::at(loc, msg));
    }
    /// Reports parameters and sections that were never asked for.
    fn finish(self) {
        let mut known: Vec<&str> = self.known.clone();
        known.sort_unstable();
        known.dedup();
        for p in &self.el.params {
            if !self.known.contains(&p.key.as_str()) && !COMMON.contains(&p.key.as_str()) {
                self.errors.push(ConfigError::at(
                    &p.loc,
                    format!(
                        "unknown parameter '{}' in {}; supported: {}",
                        p.key,
                        self.what,
                        list_or_none(&known)
                    ),
                ));
            }
        }
        for c in &self.el.children {
            if !self.known_children.contains(&c.name.as_str()) {
                let kc: Vec<String> = self
                    .known_children
                    .iter()
                    .map(|n| format!("<{n}>"))
                    .collect();
                let kc: Vec<&str> = kc.iter().map(String::as_str).collect();
                self.errors.push(ConfigError::at(
                    &c.loc,
                    format!(
                        "unknown section <{}> in {}; supported sections: {}",
                        c.name,
                        self.what,
                        list_or_none(&kc)
                    ),
                ));
            }
        }
    }
}

fn system(el: &Element, errors: &mut Vec<ConfigError>) -> SystemConfig {
    let mut s = Section::new(el, "<system>".into(), errors);
    let log_level = s.string("log_level");
    let process_name = s.string("process_name");
    let workers: u32 = s.int("workers", "integer").unwrap_or(1);
    // Accepted and ignored: they change nothing for a single-process shipper.
    for n in [
        "suppress_repeated_stacktrace",
        "ignore_repeated_log_interval",
        "ignore_same_log_interval",
        "without_source",
        "rpc_endpoint",
        "enable_get_dump",
        "suppress_config_dump",
        "log_event_verbose",
        "root_dir",
        "emit_error_log_interval",
        "dir_permission",
        "file_permission",
        "strict_config_value",
        "enable_msgpack_time_support",
        "disable_shared_socket",
        "enable_input_metrics",
        "enable_size_metrics",
    ] {
        s.raw(n);
    }
    s.children("log");
    if workers != 1 {
        s.error(
            &el.loc,
            format!("workers {workers}: logship runs exactly one worker"),
        );
    }
    s.finish();
    SystemConfig {
        log_level,
        process_name,
        workers,
    }
}

fn pattern_of(el: &Element, errors: &mut Vec<ConfigError>) -> Option<TagPattern> {
    let arg = if el.arg.trim().is_empty() {
        "**"
    } else {
        el.arg.trim()
    };
    match TagPattern::parse(arg) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(ConfigError::at(
                &el.loc,
                format!("invalid tag pattern {arg:?} in <{}>: {e}", el.name),
            ));
            None
        }
    }
}

fn type_of<'a>(
    el: &'a Element,
    errors: &mut Vec<ConfigError>,
    kind: &str,
    supported: &[&str],
) -> Option<&'a str> {
    match el.param("@type").or_else(|| el.param("type")) {
        Some(p) => {
            if supported.contains(&p.value.as_str()) {
                Some(p.value.as_str())
            } else {
                errors.push(ConfigError::at(
                    &p.loc,
                    format!(
                        "unknown {kind} @type '{}' in <{}>; supported: {}",
                        p.value,
                        el.name,
                        supported.join(", ")
                    ),
                ));
                None
            }
        }
        None => {
            errors.push(ConfigError::at(
                &el.loc,
                format!(
                    "<{}> has no @type; supported: {}",
                    el.name,
                    supported.join(", ")
                ),
            ));
            None
        }
    }
}

const SOURCE_TYPES: &[&str] = &["forward", "prometheus", "monitor_agent"];
const FILTER_TYPES: &[&str] = &["parser", "record_transformer", "concat", "docker_partial"];
const OUTPUT_TYPES: &[&str] = &[
    "stdout",
    "null",
    "file",
    "copy",
    "relabel",
    "elasticsearch",
    "forward",
];

fn source(el: &Element, errors: &mut Vec<ConfigError>) -> Option<SourceConfig> {
    let ty = type_of(el, errors, "input", SOURCE_TYPES)?;
    let mut s = Section::new(el, format!("<source> (@type {ty})"), errors);
    s.known.push("type");
    let label = el.param("@label").map(|p| p.value.clone());
    let id = el.param("@id").map(|p| p.value.clone());
    if ty == "prometheus" || ty == "monitor_agent" {
        let plugin = monitor_source(&mut s, ty);
        if let Some(l) = el.param("@label") {
            s.error(
                &l.loc,
                format!("@label has no meaning for <source> @type {ty} (it emits no events)"),
            );
        }
        s.finish();
        return Some(SourceConfig {
            id,
            label: None,
            plugin: SourcePlugin::Monitor(plugin),
            loc: el.loc.clone(),
        });
    }
    let bind = s.string_or("bind", "0.0.0.0");
    let port = s.int::<u16>("port", "port number").unwrap_or(24224);
    let linger_timeout = s.time("linger_timeout").unwrap_or(Duration::ZERO);
    let chunk_size_limit = s.size("chunk_size_limit");
    let chunk_size_warn_limit = s.size("chunk_size_warn_limit");
    let skip_invalid_event = s.bool("skip_invalid_event", false);
    let source_address_key = s.string("source_address_key");
    let source_hostname_key = s.string("source_hostname_key");
    let resolve_hostname = s.bool("resolve_hostname", false);
    let deny_keepalive = s.bool("deny_keepalive", false);
    let send_keepalive_packet = s.bool("send_keepalive_packet", false);
    let tag = s.string("tag");
    let add_tag_prefix = s.string("add_tag_prefix");
    let read_timeout = s.time("read_timeout");
    let max_connections = s.int::<usize>("max_connections", "integer");
    let security = s.child("security").map(|sec| {
        let mut t = Section::new(sec, "<security>".into(), s.errors);
        let self_hostname = t.string_or("self_hostname", &hostname());
        let shared_key = t.required("shared_key");
        let user_auth = t.bool("user_auth", false);
        let allow_anonymous_source = t.bool("allow_anonymous_source", true);
        let mut users = Vec::new();
        for u in t.children("user") {
            let mut us = Section::new(u, "<user>".into(), t.errors);
            users.push((us.required("username"), us.required("password")));
            us.finish();
        }
        // <client> (per-host keys) is not supported: finish() reports it as unknown.
        t.finish();
        ForwardSecurity {
            self_hostname,
            shared_key,
            user_auth,
            allow_anonymous_source,
            users,
        }
    });
    let tls = s
        .child("transport")
        .and_then(|tr| tls_section(tr, s.errors));
    s.finish();
    Some(SourceConfig {
        id,
        label,
        plugin: SourcePlugin::Forward(ForwardSourceConfig {
            bind,
            port,
            linger_timeout,
            chunk_size_limit,
            chunk_size_warn_limit,
            skip_invalid_event,
            source_address_key,
            source_hostname_key,
            resolve_hostname,
            deny_keepalive,
            send_keepalive_packet,
            tag,
            add_tag_prefix,
            read_timeout,
            max_connections,
            security,
            tls,
        }),
        loc: el.loc.clone(),
    })
}

/// `@type prometheus` (fluent-plugin-prometheus's input) or `@type monitor_agent`.
fn monitor_source(s: &mut Section<'_, '_>, ty: &str) -> MonitorSourceConfig {
    let kind = if ty == "prometheus" {
        MonitorKind::Prometheus
    } else {
        MonitorKind::MonitorAgent
    };
    let bind = s.string_or("bind", "0.0.0.0");
    let default_port = match kind {
        MonitorKind::Prometheus => 24231,
        MonitorKind::MonitorAgent => 24220,
    };
    let port = s.int::<u16>("port", "port number").unwrap_or(default_port);
    let health_failing_after = s
        .time("health_failing_after")
        .unwrap_or(Duration::from_secs(60));
    fn path_param(s: &mut Section<'_, '_>, name: &'static str) -> Option<String> {
        let p = s.raw(name)?;
        let v = p.value.trim().to_string();
        let plain = v
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/_.-~".contains(&c));
        if !v.starts_with('/') || !plain || v == "/healthz" || v == "/api/plugins.json" {
            let msg = format!(
                "parameter '{name}' in {}: must be a path starting with '/' (letters, digits, '/', '_', '.', '-', '~'; not /healthz or /api/plugins.json), got {v:?}",
                s.what
            );
            s.error(&p.loc, msg);
            return None;
        }
        Some(v)
    }
    let (metrics_path, aggregated_metrics_path) = match kind {
        MonitorKind::Prometheus => (
            path_param(s, "metrics_path").unwrap_or_else(|| "/metrics".into()),
            Some(
                path_param(s, "aggregated_metrics_path")
                    .unwrap_or_else(|| "/aggregated_metrics".into()),
            ),
        ),
        MonitorKind::MonitorAgent => {
            if let Some(p) = s.raw("tag") {
                let loc = p.loc.clone();
                s.error(
                    &loc,
                    "parameter 'tag' in <source> (@type monitor_agent): emitting metrics as events is not supported; scrape /api/plugins.json or /metrics instead".into(),
                );
            }
            s.time("emit_interval");
            // Accepted for compatibility; the JSON has no config or retry object.
            s.bool("include_config", false);
            s.bool("include_retry", false);
            ("/metrics".to_string(), None)
        }
    };
    if let Some(a) = &aggregated_metrics_path {
        if *a == metrics_path {
            let loc = s.el.loc.clone();
            s.error(
                &loc,
                format!("metrics_path and aggregated_metrics_path are both {a:?}"),
            );
        }
    }
    MonitorSourceConfig {
        kind,
        bind,
        port,
        metrics_path,
        aggregated_metrics_path,
        health_failing_after,
    }
}

fn tls_section(tr: &Element, errors: &mut Vec<ConfigError>) -> Option<TlsConfig> {
    let arg = tr.arg.trim();
    if arg == "tcp" {
        let s = Section::new(tr, "<transport tcp>".into(), errors);
        s.finish();
        return None;
    }
    if arg != "tls" {
        errors.push(ConfigError::at(
            &tr.loc,
            format!("unsupported <transport {arg}>; supported: tls, tcp"),
        ));
        return None;
    }
    let mut t = Section::new(tr, "<transport tls>".into(), errors);
    let cfg = TlsConfig {
        cert_path: t.string("cert_path"),
        private_key_path: t.string("private_key_path"),
        private_key_passphrase: t.string("private_key_passphrase"),
        ca_path: t.string("ca_path"),
        version: t.string("version"),
        insecure: t.bool("insecure", false),
        client_cert_auth: t.bool("client_cert_auth", false),
    };
    t.raw("min_version");
    t.raw("max_version");
    t.raw("ciphers");
    t.finish();
    Some(cfg)
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn directive(el: &Element, errors: &mut Vec<ConfigError>) -> Option<Directive> {
    let pattern = pattern_of(el, errors);
    let id = el.param("@id").map(|p| p.value.clone());
    if el.name == "filter" {
        let plugin = filter_plugin(el, errors)?;
        Some(Directive::Filter(FilterDirective {
            pattern: pattern?,
            id,
            plugin,
            loc: el.loc.clone(),
        }))
    } else {
        let plugin = output_plugin(el, errors)?;
        Some(Directive::Match(MatchDirective {
            pattern: pattern?,
            id,
            plugin,
            loc: el.loc.clone(),
        }))
    }
}

fn filter_plugin(el: &Element, errors: &mut Vec<ConfigError>) -> Option<FilterConfig> {
    let ty = type_of(el, errors, "filter", FILTER_TYPES)?;
    let mut s = Section::new(el, format!("<filter {}> (@type {ty})", el.arg), errors);
    s.known.push("type");
    let out = match ty {
        "parser" => {
            let key_name = s.string_or("key_name", "log");
            let reserve_data = s.bool("reserve_data", false);
            let reserve_time = s.bool("reserve_time", false);
            let remove_key_name_field = s.bool("remove_key_name_field", false);
            let inject_key_prefix = s.string("inject_key_prefix");
            let hash_value_field = s.string("hash_value_field");
            let emit_invalid_record_to_error = s.bool("emit_invalid_record_to_error", true);
            s.raw("replace_invalid_sequence");
            let parse = match s.child("parse") {
                Some(p) => parse_section(p, s.errors),
                None => {
                    s.error(
                        &el.loc,
                        format!(
                            "missing <parse> section in {}; supported: <parse> @type json",
                            s.what
                        ),
                    );
                    ParseConfig {
                        time_key: Some("time".into()),
                        keep_time_key: false,
                    }
                }
            };
            FilterConfig::Parser(ParserFilterConfig {
                key_name,
                reserve_data,
                reserve_time,
                remove_key_name_field,
                inject_key_prefix,
                hash_value_field,
                emit_invalid_record_to_error,
                parse,
            })
        }
        "record_transformer" => {
            if s.bool("enable_ruby", false) {
                let loc = el
                    .param("enable_ruby")
                    .map(|p| p.loc.clone())
                    .unwrap_or(el.loc.clone());
                s.error(
                    &loc,
                    "enable_ruby true is not supported: logship runs no Ruby".into(),
                );
            }
            s.bool("auto_typecast", false);
            let renew_record = s.bool("renew_record", false);
            let remove_keys = s.list("remove_keys");
            let keep_keys = s.list("keep_keys");
            let mut record = Vec::new();
            for r in s.children("record") {
                for p in &r.params {
                    record.push((p.key.clone(), p.value.clone()));
                }
                for c in &r.children {
                    s.error(
                        &c.loc,
                        format!("unexpected section <{}> inside <record>", c.name),
                    );
                }
            }
            FilterConfig::RecordTransformer(RecordTransformerConfig {
                record,
                remove_keys,
                keep_keys,
                renew_record,
            })
        }
        _ => {
            let docker = ty == "docker_partial";
            let key = if docker {
                s.string_or("key", "log")
            } else {
                s.required("key")
            };
            let separator = s.string_or("separator", if docker { "" } else { "\n" });
            let use_meta = s.bool("use_partial_metadata", docker);
            if !use_meta {
                s.error(&el.loc, format!("{}: only use_partial_metadata true (Docker's partial_* fields) is supported", s.what));
            }
            let fmt = s.one_of(
                "partial_metadata_format",
                &["docker-fluentd"],
                "docker-fluentd",
            );
            let _ = fmt;
            let keep_partial_metadata = s.bool("keep_partial_metadata", false);
            let flush_interval = s.time("flush_interval").unwrap_or(Duration::from_secs(60));
            let use_first_timestamp = s.bool("use_first_timestamp", false);
            let stream_identity_key = s.string("stream_identity_key");
            let timeout_label = s.string("timeout_label");
            FilterConfig::Concat(ConcatConfig {
                key,
                separator,
                flush_interval,
                keep_partial_metadata,
                use_first_timestamp,
                stream_identity_key,
                timeout_label,
            })
        }
    };
    s.finish();
    Some(out)
}

fn parse_section(p: &Element, errors: &mut Vec<ConfigError>) -> ParseConfig {
    let ty = type_of(p, errors, "parser", &["json"]);
    let mut s = Section::new(p, "<parse> (@type json)".into(), errors);
    s.known.push("type");
    let time_key = s.string_or("time_key", "time");
    let keep_time_key = s.bool("keep_time_key", false);
    s.one_of("json_parser", &["oj", "yajl", "json"], "oj");
    s.one_of(
        "time_type",
        &["float", "unixtime", "string", "mixed"],
        "string",
    );
    s.raw("time_format");
    s.raw("null_value_pattern");
    s.raw("null_empty_string");
    s.raw("estimate_current_event");
    s.raw("stream_buffer_size");
    s.raw("utc");
    s.raw("localtime");
    s.raw("timezone");
    let _ = ty;
    s.finish();
    ParseConfig {
        time_key: if time_key.is_empty() {
            None
        } else {
            Some(time_key)
        },
        keep_time_key,
    }
}

/// `metadata_key` of the stdout and file outputs.
fn line_metadata_key(s: &mut Section<'_, '_>) -> Option<String> {
    Some(s.string_or("metadata_key", DEFAULT_LINE_METADATA_KEY)).filter(|k| !k.is_empty())
}

fn format_section(s: &mut Section<'_, '_>, default: LineFormat) -> LineFormat {
    let Some(f) = s.child("format") else {
        return default;
    };
    let ty = f
        .param("@type")
        .map(|p| p.value.as_str())
        .unwrap_or(match default {
            LineFormat::Stdout => "stdout",
            LineFormat::OutFile => "out_file",
            LineFormat::Json => "json",
        });
    let out = match ty {
        "json" => LineFormat::Json,
        "stdout" => LineFormat::Stdout,
        "out_file" => LineFormat::OutFile,
        other => {
            let loc = f.param("@type").map_or(f.loc.clone(), |p| p.loc.clone());
            s.error(&loc, format!("unknown formatter @type '{other}' in <format>; supported: json, stdout, out_file"));
            default
        }
    };
    let mut fs = Section::new(f, format!("<format> (@type {ty})"), s.errors);
    fs.raw("add_newline");
    if ty == "stdout" {
        fs.one_of("output_type", &["json"], "json");
    }
    fs.finish();
    out
}

fn buffer_section(s: &mut Section<'_, '_>) -> Option<BufferConfig> {
    let b = s.child("buffer")?;
    let ty = b
        .param("@type")
        .map(|p| p.value.clone())
        .unwrap_or_else(|| "memory".into());
    if ty != "memory" && ty != "file" {
        let loc = b.param("@type").map_or(b.loc.clone(), |p| p.loc.clone());
        s.error(
            &loc,
            format!("unknown buffer @type '{ty}'; supported: memory, file"),
        );
    }
    let chunk_keys: Vec<String> = b
        .arg
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let mut t = Section::new(b, format!("<buffer> (@type {ty})"), s.errors);
    let file_path = t.string("path");
    if ty == "file" && file_path.is_none() {
        t.error(
            &b.loc,
            "missing required parameter 'path' in <buffer> (@type file)".into(),
        );
    }
    let timekey = t.time("timekey");
    if chunk_keys.iter().any(|k| k == "time") && timekey.is_none() {
        t.error(&b.loc, "<buffer time> needs a 'timekey' parameter".into());
    }
    let cfg = BufferConfig {
        chunk_keys,
        is_file: ty == "file",
        file_path,
        timekey,
        timekey_wait: t.time("timekey_wait"),
        chunk_limit_size: t.size("chunk_limit_size"),
        total_limit_size: t.size("total_limit_size"),
        chunk_limit_records: t.int("chunk_limit_records", "integer"),
        flush_mode: t.one_of(
            "flush_mode",
            &["default", "lazy", "interval", "immediate"],
            "default",
        ),
        flush_interval: t.time("flush_interval").unwrap_or(Duration::from_secs(60)),
        flush_at_shutdown: t.parsed("flush_at_shutdown", values::parse_bool),
        flush_thread_count: t.int("flush_thread_count", "integer").unwrap_or(1),
        retry_type: t.one_of(
            "retry_type",
            &["exponential_backoff", "periodic"],
            "exponential_backoff",
        ),
        retry_wait: t.time("retry_wait").unwrap_or(Duration::from_secs(1)),
        retry_max_interval: t.time("retry_max_interval"),
        retry_forever: t.bool("retry_forever", false),
        retry_max_times: t.int("retry_max_times", "integer"),
        retry_timeout: t
            .time("retry_timeout")
            .unwrap_or(Duration::from_secs(72 * 3600)),
        overflow_action: t.one_of(
            "overflow_action",
            &["throw_exception", "block", "drop_oldest_chunk"],
            "throw_exception",
        ),
    };
    t.int::<f64>("retry_exponential_backoff_base", "number");
    t.bool("retry_randomize", true);
    t.bool("retry_secondary_threshold", false);
    t.int::<u64>("queued_chunks_limit_size", "integer");
    t.one_of("compress", &["text", "gzip"], "text");
    t.time("flush_thread_interval");
    t.time("flush_thread_burst_interval");
    t.time("delayed_commit_timeout");
    t.int::<u64>("queue_limit_length", "integer");
    t.bool("disable_chunk_backup", false);
    t.bool("timekey_use_utc", false);
    t.raw("timekey_zone");
    t.raw("path_suffix");
    t.finish();
    Some(cfg)
}

fn output_plugin(el: &Element, errors: &mut Vec<ConfigError>) -> Option<OutputConfig> {
    let ty = type_of(el, errors, "output", OUTPUT_TYPES)?;
    let what = if el.name == "store" {
        format!("<store> (@type {ty})")
    } else {
        format!("<match {}> (@type {ty})", el.arg)
    };
    let mut s = Section::new(el, what, errors);
    s.known.push("type");
    let out = match ty {
        "stdout" => {
            s.one_of("output_type", &["json"], "json");
            let format = format_section(&mut s, LineFormat::Stdout);
            let metadata_key = line_metadata_key(&mut s);
            let buffer = buffer_section(&mut s);
            OutputConfig::Stdout(StdoutConfig {
                format,
                metadata_key,
                buffer,
            })
        }
        "null" => {
            s.raw("never_flush");
            buffer_section(&mut s);
            OutputConfig::Null
        }
        "file" => {
            let path = s.required("path");
            let append = s.bool("append", false);
            let add_path_suffix = s.bool("add_path_suffix", true);
            let path_suffix = s.string_or("path_suffix", ".log");
            s.one_of("compress", &["text"], "text");
            s.raw("symlink_path");
            let format = format_section(&mut s, LineFormat::OutFile);
            let metadata_key = line_metadata_key(&mut s);
            let buffer = buffer_section(&mut s);
            OutputConfig::File(FileOutputConfig {
                path,
                append,
                add_path_suffix,
                path_suffix,
                format,
                metadata_key,
                buffer,
            })
        }
        "copy" => {
            s.one_of(
                "copy_mode",
                &["no_copy", "shallow", "deep", "marshal"],
                "no_copy",
            );
            s.bool("deep_copy", false);
            let mut stores = Vec::new();
            let store_els = s.children("store");
            for st in &store_els {
                if let Some(o) = output_plugin(st, s.errors) {
                    stores.push((st.param("@id").map(|p| p.value.clone()), o));
                }
            }
            if store_els.is_empty() {
                s.error(
                    &el.loc,
                    "@type copy needs at least one <store> section".into(),
                );
            }
            OutputConfig::Copy(stores)
        }
        "relabel" => {
            let label = s.raw("@label").map(|p| p.value.clone());
            match label {
                Some(l) => OutputConfig::Relabel(l),
                None => {
                    s.error(&el.loc, "@type relabel needs an @label parameter".into());
                    OutputConfig::Null
                }
            }
        }
        "elasticsearch" => {
            let mut hosts = s.list("hosts");
            let host = s.string_or("host", "localhost");
            let port = s.int::<u16>("port", "port number").unwrap_or(9200);
            let scheme = s.one_of("scheme", &["http", "https"], "http");
            if hosts.is_empty() {
                hosts.push(format!("{host}:{port}"));
            }
            let mut cfg = ElasticsearchConfig {
                hosts,
                scheme,
                path: s.string("path"),
                user: s.string("user"),
                password: s.string("password"),
                index_name: s.string_or("index_name", "fluentd"),
                logstash_format: s.bool("logstash_format", false),
                logstash_prefix: s.string_or("logstash_prefix", "logstash"),
                logstash_dateformat: s.string_or("logstash_dateformat", "%Y.%m.%d"),
                include_tag_key: s.bool("include_tag_key", false),
                tag_key: s.string_or("tag_key", "tag"),
                id_key: s.string("id_key"),
                metadata_key: s.string("metadata_key").filter(|k| !k.is_empty()),
                time_key: s.string("time_key").filter(|k| !k.is_empty()),
                time_key_format: s.string("time_key_format").filter(|k| !k.is_empty()),
                time_key_exclude_timestamp: s.bool("time_key_exclude_timestamp", false),
                include_timestamp: s.bool("include_timestamp", false),
                target_index_key: s.string("target_index_key").filter(|k| !k.is_empty()),
                log_es_400_reason: s.bool("log_es_400_reason", false),
                reconnect_on_error: s.bool("reconnect_on_error", false),
                reload_connections: s.bool("reload_connections", true),
                reload_after: s
                    .int::<i64>("reload_after", "integer")
                    .and_then(|n| u64::try_from(n).ok().filter(|&n| n > 0)),
                reload_on_failure: s.bool("reload_on_failure", false),
                resurrect_after: s.time("resurrect_after").unwrap_or(Duration::from_secs(60)),
                verify_es_version_at_startup: s.bool("verify_es_version_at_startup", true),
                default_elasticsearch_version: s
                    .int::<u32>("default_elasticsearch_version", "integer")
                    .unwrap_or(5),
                request_timeout: s.time("request_timeout").unwrap_or(Duration::from_secs(5)),
                ssl_verify: s.bool("ssl_verify", true),
                suppress_type_name: s.bool("suppress_type_name", false),
                logstash_prefix_separator: s.string_or("logstash_prefix_separator", "-"),
                utc_index: s.bool("utc_index", true),
                write_operation: s.one_of("write_operation", &["create", "index"], "create"),
                template_name: s.string("template_name"),
                template_file: s.string("template_file"),
                template_overwrite: s.bool("template_overwrite", false),
                bulk_message_request_threshold: s.size("bulk_message_request_threshold"),
                compression_level: s.int::<u32>("compression_level", "integer"),
                dead_letter_path: s.string("dead_letter_path"),
                buffer: buffer_section(&mut s),
            };
            if let Some(l) = cfg.compression_level {
                if l > 9 {
                    s.error(&el.loc, format!("compression_level must be 0..9, got {l}"));
                }
            }
            if cfg.template_name.is_some() != cfg.template_file.is_some() {
                s.error(
                    &el.loc,
                    "template_name and template_file must be given together".into(),
                );
            }
            for sec in s.children("secondary") {
                let ty = sec.param("@type").map(|p| p.value.as_str()).unwrap_or("");
                match (ty, sec.param("path")) {
                    ("file" | "secondary_file", Some(p)) if cfg.dead_letter_path.is_none() => {
                        cfg.dead_letter_path = Some(p.value.clone());
                    }
                    _ => s.error(
                        &sec.loc,
                        "<secondary> of @type elasticsearch must be '@type file' with a 'path' (or use dead_letter_path)".into(),
                    ),
                }
            }
            if let Some(f) = &cfg.time_key_format {
                if let Err(e) = crate::output::timefmt::check_strptime_format(f) {
                    let loc = el
                        .param("time_key_format")
                        .map_or(el.loc.clone(), |p| p.loc.clone());
                    s.error(
                        &loc,
                        format!("parameter 'time_key_format' in {}: {e}", s.what),
                    );
                }
            }
            s.raw("type_name");
            s.int::<u32>("max_retry_putting_template", "integer");
            s.bool("with_transporter_log", false);
            s.one_of("http_backend", &["excon", "typhoeus"], "excon");
            s.raw("ssl_version");
            s.raw("ca_file");
            OutputConfig::Elasticsearch(Box::new(cfg))
        }
        _ => {
            let mut servers = Vec::new();
            for sv in s.children("server") {
                let mut t = Section::new(sv, "<server>".into(), s.errors);
                servers.push(ForwardServerTarget {
                    host: t.required("host"),
                    port: t.int::<u16>("port", "port number").unwrap_or(24224),
                    name: t.string("name"),
                    weight: t.int("weight", "integer").unwrap_or(60),
                    standby: t.bool("standby", false),
                    shared_key: t.string("shared_key"),
                    username: t.string("username"),
                    password: t.string("password"),
                });
                t.finish();
            }
            if servers.is_empty() {
                s.error(
                    &el.loc,
                    "@type forward needs at least one <server> section".into(),
                );
            }
            let (shared_key, self_hostname) = match s.child("security") {
                Some(sec) => {
                    let mut t = Section::new(sec, "<security>".into(), s.errors);
                    let r = (Some(t.required("shared_key")), t.string("self_hostname"));
                    t.raw("username");
                    t.raw("password");
                    t.finish();
                    r
                }
                None => (None, None),
            };
            let cfg = ForwardOutputConfig {
                servers,
                require_ack_response: s.bool("require_ack_response", false),
                ack_response_timeout: s
                    .time("ack_response_timeout")
                    .unwrap_or(Duration::from_secs(190)),
                send_timeout: s.time("send_timeout").unwrap_or(Duration::from_secs(60)),
                connect_timeout: s.time("connect_timeout"),
                heartbeat_type: s.one_of(
                    "heartbeat_type",
                    &["transport", "tcp", "udp", "none"],
                    "transport",
                ),
                compress: s.one_of("compress", &["text", "gzip"], "text"),
                send_metadata: s.bool("send_metadata", false),
                shared_key,
                self_hostname,
                buffer: buffer_section(&mut s),
                tls: s.one_of("transport", &["tcp", "tls"], "tcp") == "tls",
                tls_cert_path: s.string("tls_cert_path"),
                tls_verify_hostname: s.bool("tls_verify_hostname", true),
                tls_insecure_mode: s.bool("tls_insecure_mode", false),
                heartbeat_interval: s
                    .time("heartbeat_interval")
                    .unwrap_or(Duration::from_secs(1)),
                recover_wait: s.time("recover_wait").unwrap_or(Duration::from_secs(10)),
            };
            if cfg.heartbeat_interval.is_zero() {
                s.error(&el.loc, "heartbeat_interval must be greater than 0".into());
            }
            if cfg.tls && !cfg.tls_insecure_mode && cfg.tls_cert_path.is_none() {
                s.error(
                    &el.loc,
                    "transport tls needs tls_cert_path (the CA to trust) or tls_insecure_mode true"
                        .into(),
                );
            }
            s.int::<u32>("phi_threshold", "integer");
            s.time("hard_timeout");
            s.bool("keepalive", false);
            s.time("keepalive_timeout");
            s.time("expire_dns_cache");
            s.bool("dns_round_robin", false);
            s.bool("ignore_network_errors_at_startup", false);
            s.bool("verify_connection_at_startup", false);
            s.raw("tls_version");
            s.children("secondary");
            OutputConfig::Forward(cfg)
        }
    };
    s.finish();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(t: &str) -> Result<Config, Vec<ConfigError>> {
        Config::from_str_at(t, Path::new("t.conf"))
    }

    #[test]
    fn default_config_is_valid() {
        let c = check(DEFAULT_CONFIG).unwrap();
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.root.directives.len(), 1);
    }

    #[test]
    fn monitor_sources_have_fluentds_defaults() {
        let c = check("<source>\n  @type prometheus\n</source>\n<source>\n  @type monitor_agent\n  bind 127.0.0.1\n</source>\n").unwrap();
        let m: Vec<&MonitorSourceConfig> = c
            .sources
            .iter()
            .map(|s| match &s.plugin {
                SourcePlugin::Monitor(m) => m,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(m[0].kind, MonitorKind::Prometheus);
        assert_eq!((m[0].bind.as_str(), m[0].port), ("0.0.0.0", 24231));
        assert_eq!(m[0].metrics_path, "/metrics");
        assert_eq!(
            m[0].aggregated_metrics_path.as_deref(),
            Some("/aggregated_metrics")
        );
        assert_eq!(m[0].health_failing_after, Duration::from_secs(60));
        assert_eq!(m[1].kind, MonitorKind::MonitorAgent);
        assert_eq!((m[1].bind.as_str(), m[1].port), ("127.0.0.1", 24220));
        assert_eq!(m[1].aggregated_metrics_path, None);
        let e =
            check("<source>\n  @type prometheus\n  @label @X\n</source>\n<label @X>\n</label>\n")
                .unwrap_err();
        assert!(
            e[0].to_string()
                .starts_with("t.conf:3: @label has no meaning"),
            "{}",
            e[0]
        );
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
}
