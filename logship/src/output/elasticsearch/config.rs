//! `@type elasticsearch`: its parameters (fluent-plugin-elasticsearch's, as far as logship
//! honours them), read into an [`ElasticsearchConfig`], then checked into the
//! [`EsSettings`] the output runs with (base URLs, credentials, TLS, index naming, request
//! options).

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{redact_url, split_userinfo, Credentials};
use super::tls::{TlsOptions, TlsVersion};
use crate::buffer::config::BufferConfig;
use crate::buffer::{BufferSettings, RetryPolicy};
use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::EventTime;
use crate::output::{timefmt, Output, OutputContext, OutputPlugin};
use crate::secret::Secret;

/// `@type elasticsearch`, as configured.
#[derive(Debug, Clone)]
pub struct ElasticsearchConfig {
    /// `host:port` or URLs (`hosts`, else `host` and `port`).
    pub hosts: Vec<String>,
    pub scheme: String,
    pub path: Option<String>,
    /// HTTP basic auth (see `super::auth`).
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// logship's own: read the password from this file (a mounted secret).
    pub password_file: Option<String>,
    /// `ID:KEY` (or its base64 encoded form): `Authorization: ApiKey ...`.
    pub api_key: Option<Secret>,
    /// logship's own: read the API key from this file.
    pub api_key_file: Option<String>,
    /// TLS (see `super::tls`): PEM file of the CA(s) to trust.
    pub ca_file: Option<String>,
    /// `false`: accept any certificate.
    pub ssl_verify: bool,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub client_key_pass: Option<Secret>,
    /// Both or neither (default TLS 1.2–1.3).
    pub ssl_min_version: Option<TlsVersion>,
    pub ssl_max_version: Option<TlsVersion>,
    pub index_name: String,
    pub logstash_format: bool,
    pub logstash_prefix: String,
    pub logstash_prefix_separator: String,
    pub logstash_dateformat: String,
    pub utc_index: bool,
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
    /// `create` or `index`.
    pub write_operation: String,
    pub template_name: Option<String>,
    pub template_file: Option<String>,
    pub template_overwrite: bool,
    pub request_timeout: Duration,
    /// Largest `_bulk` body in bytes before a chunk is split into several requests.
    pub bulk_message_request_threshold: u64,
    /// gzip level 0..=9 for request bodies; `None` = no compression.
    pub compression_level: Option<u32>,
    /// JSON-lines file for events Elasticsearch rejected (or `<secondary> @type file path`).
    pub dead_letter_path: Option<String>,
    pub buffer: Option<BufferConfig>,
}

const NEVER_TYPE: &str =
    "logship never sends a document `_type` (OpenSearch 2 and Elasticsearch 8 reject it)";
const RUBY_CLIENT: &str = "an option of the Ruby Elasticsearch client, which logship does not use";
/// fluent-plugin-elasticsearch's TLS version names (with a Ruby that knows TLS 1.3).
const TLS_VERSIONS: &[&str] = &["TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"];
/// The parameters that only matter for a host reached with https.
const TLS_PARAMS: &[&str] = &[
    "ca_file",
    "ssl_verify",
    "client_cert",
    "client_key",
    "client_key_pass",
    "ssl_min_version",
    "ssl_max_version",
];

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string("host").default("localhost").doc("one node (without `hosts`)"),
    ParamSpec::port("port").default("9200").doc("its port"),
    ParamSpec::array("hosts").doc("`h1:9200,h2:9200` or URLs: requests go round robin, a host that refuses or times out is skipped for `resurrect_after`, then tried again (see elasticsearch.md, Hosts)"),
    ParamSpec::choice("scheme", &["http", "https"]).default("http").doc("for hosts written without one"),
    ParamSpec::string("path").doc("URL path prefix (behind a proxy)"),
    ParamSpec::string("user").doc("HTTP basic auth user (with `password` or `password_file`; not with `api_key`); credentials written in a host's URL win for that host"),
    ParamSpec::string("password").secret().doc("HTTP basic auth password"),
    ParamSpec::string("password_file").doc("logship's own: read the password from this file (a mounted secret; one final line break is dropped)"),
    ParamSpec::string("api_key").secret().doc("`ID:KEY` or its base64 form, sent as `Authorization: ApiKey` (not with `user`)"),
    ParamSpec::string("api_key_file").doc("logship's own: read the API key from this file"),
    ParamSpec::string("ca_file").doc("PEM file of the CA certificate(s) to trust instead of the built-in Mozilla roots"),
    ParamSpec::bool("ssl_verify").default("true").doc("`false`: accept any certificate for any name (encrypted, nobody authenticated; WARN at start)"),
    ParamSpec::string("client_cert").doc("PEM client certificate for mutual TLS (with `client_key`)"),
    ParamSpec::string("client_key").doc("its PEM private key: PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8 with `client_key_pass`"),
    ParamSpec::string("client_key_pass").secret().doc("the passphrase of an encrypted `client_key`"),
    ParamSpec::choice("ssl_min_version", TLS_VERSIONS).doc("lowest TLS version (with `ssl_max_version`; default TLSv1_2..TLSv1_3); logship speaks 1.2 and 1.3 only, a range reaching lower starts at TLSv1_2"),
    ParamSpec::choice("ssl_max_version", TLS_VERSIONS).doc("highest TLS version (with `ssl_min_version`)"),
    ParamSpec::string("index_name").default("fluentd").doc("without `logstash_format`: `${tag}` and strftime placeholders are expanded per event"),
    ParamSpec::bool("logstash_format").default("false").doc("index = `logstash_prefix` + `logstash_prefix_separator` + strftime(`logstash_dateformat`) of the document's time; documents get `@timestamp`"),
    ParamSpec::string("logstash_prefix").default("logstash").doc("may hold `${tag}`"),
    ParamSpec::string("logstash_prefix_separator").default("-").doc(""),
    ParamSpec::string("logstash_dateformat").default("%Y.%m.%d").doc("strftime subset: `%Y %y %m %d %H %M %S %j %%`"),
    ParamSpec::bool("utc_index").default("true").doc("dates of index names in UTC (`false`: local time)"),
    ParamSpec::bool("include_tag_key").default("false").doc("add the tag to each document under `tag_key`"),
    ParamSpec::string("tag_key").default("tag").doc(""),
    ParamSpec::string("id_key").doc("take `_id` from this field instead of the deterministic hash"),
    ParamSpec::string("metadata_key").doc("store an event's non-empty Forward v1.5 metadata in the document under this key (off by default)"),
    ParamSpec::choice("write_operation", &["create", "index"]).default("create").doc("`create` (logship's default: a resent event is not indexed twice) or `index` (overwrites)"),
    ParamSpec::string("template_name").doc("install this index template before the first bulk request (with `template_file`)"),
    ParamSpec::string("template_file").doc("its JSON: with a top-level `template` key composable (`_index_template`), else legacy (`_template`)"),
    ParamSpec::bool("template_overwrite").default("false").doc("PUT the template even when it exists"),
    ParamSpec::time("request_timeout").default("5s").doc("per HTTP request"),
    ParamSpec::size("bulk_message_request_threshold").default("4m").doc("a chunk whose `_bulk` body would grow past this is split into several requests, each encoded, sent and dropped before the next (Fluentd: 20 MiB; a flush worker holds its chunk plus one body, docs/durability.md *Memory*)"),
    ParamSpec::integer("compression_level").doc("gzip request bodies at this level (0–9)"),
    ParamSpec::string("dead_letter_path").doc("logship's own: JSON-lines file for events Elasticsearch rejected"),
    ParamSpec::string("time_key").doc("a record field whose time becomes `@timestamp` and dates the logstash index (the field stays)"),
    ParamSpec::string("time_key_format").doc("Ruby strptime format of that field (`%Y-%m-%dT%H:%M:%S.%N%z` …; no zone: UTC); unset: ISO 8601; a number is Unix seconds"),
    ParamSpec::bool("time_key_exclude_timestamp").default("false").doc("the `time_key` value dates the index, but no `@timestamp` is added"),
    ParamSpec::bool("include_timestamp").default("false").doc("documents get `@timestamp` without `logstash_format` (without either, none is added, as in Fluentd)"),
    ParamSpec::string("target_index_key").doc("the record's value at this key (dotted path into nested maps) is the index, lower-cased; the key is not stored"),
    ParamSpec::bool("log_es_400_reason").default("false").doc("log each document rejected with 400 with its error type and reason (WARN, rate-limited); otherwise a dead-lettered rejection gets one summary line"),
    ParamSpec::string("type_name").no_effect("logship never sends a document `_type`: Elasticsearch 7 keeps every document under `_doc` whatever the name (fluent-plugin-elasticsearch writes `_doc` with 7.x too), Elasticsearch 8 and OpenSearch 2 reject custom types"),
    ParamSpec::bool("suppress_type_name").default("false").no_effect(NEVER_TYPE),
    ParamSpec::choice("ssl_version", &["SSLv23", "TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"]).default("TLSv1_2").no_effect("as in fluent-plugin-elasticsearch on any Ruby with TLS 1.3: the versions are `ssl_min_version`..`ssl_max_version`, default TLSv1_2..TLSv1_3"),
    ParamSpec::bool("reconnect_on_error").default("false").doc("after any failed request (not only \"host unreachable\"): new connections, the configured hosts again, the version detected again"),
    ParamSpec::bool("reload_connections").default("true").doc("node discovery: every `reload_after` requests the host list becomes the cluster's HTTP nodes (`GET _nodes/http`); set false behind a load balancer"),
    ParamSpec::integer("reload_after").default("-1").doc("requests between discoveries (-1: the Ruby transport's 10,000)"),
    ParamSpec::bool("reload_on_failure").default("false").doc("also discover the nodes after a request failed on every host"),
    ParamSpec::time("resurrect_after").default("60s").doc("a host that gave no response is skipped this long, doubled per further failure (at most 32×)"),
    ParamSpec::string("sniffer_class_name").no_effect("a Ruby class cannot be loaded; logship's discovery reads `_nodes/http` (`reload_connections`)"),
    ParamSpec::bool("verify_es_version_at_startup").default("true").doc("`GET /` before the first request: the engine and version are logged, and a composable template on an Elasticsearch before 7.8 is refused with a clear error"),
    ParamSpec::integer("default_elasticsearch_version").default("5").doc("the major version assumed without detection"),
    ParamSpec::integer("max_retry_putting_template").no_effect("the template is installed again after a connection-level failure, not counted"),
    ParamSpec::bool("with_transporter_log").default("false").no_effect(RUBY_CLIENT),
    ParamSpec::choice("http_backend", &["excon", "typhoeus"]).default("excon").no_effect(RUBY_CLIENT),
];

static SECONDARY: SectionSpec = SectionSpec::new(
    "secondary",
    &[
        ParamSpec::choice("@type", &["file", "secondary_file"])
            .required()
            .doc("only a file"),
        ParamSpec::string("path")
            .required()
            .doc("the same as `dead_letter_path`"),
    ],
)
.doc("Where rejected events go: the same as `dead_letter_path`.");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn OutputPlugin> = PluginSpec {
    type_name: "elasticsearch",
    summary: "Writes events to Elasticsearch or OpenSearch with `_bulk` (deterministic ids, `create`); see [elasticsearch.md](elasticsearch.md).",
    params: PARAMS,
    sections: &[&crate::buffer::config::SECTION, &SECONDARY],
    parse,
};

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn OutputPlugin> {
    let mut hosts: Vec<String> = s.opt("hosts").unwrap_or_default();
    let host: String = s.get("host");
    let port: u16 = s.get("port");
    if hosts.is_empty() {
        hosts.push(format!("{host}:{port}"));
    }
    let mut cfg = ElasticsearchConfig {
        hosts,
        scheme: s.get("scheme"),
        path: s.opt("path"),
        user: s.opt("user"),
        password: s.secret("password"),
        password_file: s.opt("password_file"),
        api_key: s.secret("api_key"),
        api_key_file: s.opt("api_key_file"),
        ca_file: s.opt("ca_file"),
        ssl_verify: s.get("ssl_verify"),
        client_cert: s.opt("client_cert"),
        client_key: s.opt("client_key"),
        client_key_pass: s.secret("client_key_pass"),
        ssl_min_version: tls_version(s, "ssl_min_version"),
        ssl_max_version: tls_version(s, "ssl_max_version"),
        index_name: s.get("index_name"),
        logstash_format: s.get("logstash_format"),
        logstash_prefix: s.get("logstash_prefix"),
        logstash_prefix_separator: s.get("logstash_prefix_separator"),
        logstash_dateformat: s.get("logstash_dateformat"),
        utc_index: s.get("utc_index"),
        include_tag_key: s.get("include_tag_key"),
        tag_key: s.get("tag_key"),
        id_key: s.opt("id_key"),
        metadata_key: s.opt::<String>("metadata_key").filter(|k| !k.is_empty()),
        time_key: s.opt::<String>("time_key").filter(|k| !k.is_empty()),
        time_key_format: s.opt::<String>("time_key_format").filter(|k| !k.is_empty()),
        time_key_exclude_timestamp: s.get("time_key_exclude_timestamp"),
        include_timestamp: s.get("include_timestamp"),
        target_index_key: s
            .opt::<String>("target_index_key")
            .filter(|k| !k.is_empty()),
        log_es_400_reason: s.get("log_es_400_reason"),
        reconnect_on_error: s.get("reconnect_on_error"),
        reload_connections: s.get("reload_connections"),
        reload_after: s
            .opt::<i64>("reload_after")
            .and_then(|n| u64::try_from(n).ok().filter(|&n| n > 0)),
        reload_on_failure: s.get("reload_on_failure"),
        resurrect_after: s.get("resurrect_after"),
        verify_es_version_at_startup: s.get("verify_es_version_at_startup"),
        default_elasticsearch_version: s.get("default_elasticsearch_version"),
        write_operation: s.get("write_operation"),
        template_name: s.opt("template_name"),
        template_file: s.opt("template_file"),
        template_overwrite: s.get("template_overwrite"),
        request_timeout: s.get("request_timeout"),
        bulk_message_request_threshold: s.get("bulk_message_request_threshold"),
        compression_level: s.opt("compression_level"),
        dead_letter_path: s.opt("dead_letter_path"),
        buffer: s.child("buffer", crate::buffer::config::parse),
    };
    if let Some(l) = cfg.compression_level.filter(|l| *l > 9) {
        s.error_here(format!("compression_level must be 0..9, got {l}"));
    }
    if cfg.template_name.is_some() != cfg.template_file.is_some() {
        s.error_here("template_name and template_file must be given together");
    }
    if let Some(f) = &cfg.time_key_format {
        if let Err(e) = timefmt::check_strptime_format(f) {
            let loc = s
                .given("time_key_format")
                .map_or(s.element().loc.clone(), |p| p.loc.clone());
            let msg = format!("parameter 'time_key_format' in {}: {e}", s.what());
            s.error(&loc, msg);
        }
    }
    security_checks(s, &cfg);
    if let Some((path, loc)) = s.child("secondary", |sec| {
        // `file` and `secondary_file` both append to `path` (checked by the declared type).
        let _type: String = sec.get("@type");
        (sec.get::<String>("path"), sec.element().loc.clone())
    }) {
        if cfg.dead_letter_path.is_some() {
            s.error(
                &loc,
                "<secondary> and dead_letter_path are the same thing; give one of them",
            );
        }
        cfg.dead_letter_path = Some(path);
    }
    Arc::new(cfg)
}

fn tls_version(s: &mut Section<'_, '_>, name: &'static str) -> Option<TlsVersion> {
    // The declared choice has already checked the name.
    s.opt::<String>(name).and_then(|v| TlsVersion::parse(&v))
}

/// The TLS and credential parameters that depend on each other, checked as
/// fluent-plugin-elasticsearch checks them; TLS parameters while no host uses https are named
/// as having no effect.
fn security_checks(s: &mut Section<'_, '_>, cfg: &ElasticsearchConfig) {
    if cfg.ssl_min_version.is_some() != cfg.ssl_max_version.is_some() {
        s.error_here("ssl_min_version and ssl_max_version must be set together");
    }
    if cfg.client_cert.is_some() != cfg.client_key.is_some() {
        s.error_here("client_cert and client_key must be set together");
    }
    for (value, file, name) in [
        (
            cfg.password.is_some(),
            cfg.password_file.is_some(),
            "password",
        ),
        (cfg.api_key.is_some(), cfg.api_key_file.is_some(), "api_key"),
    ] {
        if value && file {
            s.error_here(format!("set either {name} or {name}_file, not both"));
        }
    }
    let has_password = cfg.password.is_some() || cfg.password_file.is_some();
    let has_api_key = cfg.api_key.is_some() || cfg.api_key_file.is_some();
    if has_api_key && (cfg.user.is_some() || has_password) {
        s.error_here("set either user/password or api_key, not both");
    }
    if cfg.user.is_some() && !has_password {
        s.error_here("'password' (or password_file) must be present if 'user' is present");
    }
    if has_password && cfg.user.is_none() {
        s.error_here("'user' must be present if 'password' is present");
    }
    let any_https =
        cfg.scheme == "https" || cfg.hosts.iter().any(|h| h.trim().starts_with("https://"));
    if !any_https {
        for &name in TLS_PARAMS {
            if let Some(p) = s.given(name) {
                s.note_no_effect(
                    &p.loc,
                    name,
                    "no host uses https (set `scheme https` or write https:// hosts)",
                );
            }
        }
    }
}

impl ElasticsearchConfig {
    /// The credentials and TLS settings, without any secret:
    /// ` (basic auth as user "u", password from password_file; TLS ca_file=/x ...)`.
    fn describe_security(&self) -> String {
        let mut parts = Vec::new();
        if let Some(u) = &self.user {
            let from_file = if self.password_file.is_some() {
                ", password from password_file"
            } else {
                ""
            };
            parts.push(format!("basic auth as user {u:?}{from_file}"));
        }
        if self.api_key.is_some() {
            parts.push("API key".to_string());
        } else if let Some(f) = &self.api_key_file {
            parts.push(format!("API key from {f}"));
        }
        let mut tls = Vec::new();
        if let Some(c) = &self.ca_file {
            tls.push(format!("ca_file={c}"));
        }
        if let Some(c) = &self.client_cert {
            tls.push(format!("client_cert={c}"));
        }
        if !self.ssl_verify {
            tls.push("ssl_verify=false".into());
        }
        if let (Some(a), Some(b)) = (self.ssl_min_version, self.ssl_max_version) {
            tls.push(format!("versions={}..{}", a.name(), b.name()));
        }
        if !tls.is_empty() {
            parts.push(format!("TLS {}", tls.join(" ")));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join("; "))
        }
    }
}

impl OutputPlugin for ElasticsearchConfig {
    fn type_name(&self) -> &'static str {
        "elasticsearch"
    }

    fn describe(&self) -> String {
        let index = if self.logstash_format {
            format!(
                "{}{}{}",
                self.logstash_prefix, self.logstash_prefix_separator, self.logstash_dateformat
            )
        } else {
            self.index_name.clone()
        };
        let buffer = match &self.buffer {
            Some(b) if b.is_file => {
                format!(
                    " (file buffer {})",
                    b.file_path.as_deref().unwrap_or_default()
                )
            }
            _ => String::new(),
        };
        let hosts: Vec<String> = self.hosts.iter().map(|h| redact_url(h)).collect();
        format!(
            "elasticsearch hosts={} index={index}{buffer}{}",
            hosts.join(","),
            self.describe_security()
        )
    }

    fn build(&self, ctx: &mut dyn OutputContext) -> Result<Arc<dyn Output>, String> {
        let out = super::ElasticsearchOutput::new(self, ctx.id())
            .map_err(|e| format!("@type elasticsearch: {e}"))?;
        Ok(Arc::new(out))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The bulk operation written for each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOperation {
    /// `create`: a document whose `_id` exists is rejected with 409 — counted as delivered.
    Create,
    /// `index`: overwrites a document with the same `_id`.
    Index,
}

impl WriteOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOperation::Create => "create",
            WriteOperation::Index => "index",
        }
    }
}

/// How an event's index name is built.
#[derive(Debug, Clone)]
pub enum IndexNaming {
    /// `logstash_format true`: `PREFIX SEP strftime(dateformat)`.
    Logstash {
        prefix: String,
        separator: String,
        dateformat: String,
    },
    /// `index_name` with `${tag}` and strftime placeholders.
    Name(String),
}

/// Everything the output needs, checked.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// `scheme://host:port[/path]` without a trailing slash (and without credentials), one
    /// per host (round robin).
    pub base_urls: Vec<String>,
    /// What each host of `base_urls` (same position) is sent: credentials written in its URL,
    /// else `user`/`password` or `api_key`.
    pub credentials: Vec<Credentials>,
    pub tls: TlsOptions,
    pub naming: IndexNaming,
    pub utc_index: bool,
    pub include_tag_key: bool,
    pub tag_key: String,
    pub id_key: Option<String>,
    /// `metadata_key`: store non-empty Forward v1.5 metadata under this key.
    pub metadata_key: Option<String>,
    /// `logstash_format` or `include_timestamp`: documents get `@timestamp`.
    pub writes_timestamp: bool,
    pub time_key: Option<String>,
    pub time_key_format: Option<String>,
    pub time_key_exclude_timestamp: bool,
    /// `target_index_key` split at dots.
    pub target_index_path: Option<Vec<String>>,
    pub log_es_400_reason: bool,
    pub write_operation: WriteOperation,
    /// Template name, the JSON body and whether it is a composable (`_index_template`) one.
    pub template: Option<Template>,
    pub template_overwrite: bool,
    pub request_timeout: Duration,
    pub bulk_threshold: usize,
    pub compression_level: Option<u32>,
    pub dead_letter_path: Option<String>,
    pub buffer: BufferSettings,
    pub flush_thread_count: usize,
    /// `retry_*` of `<buffer>`: waits between attempts, `retry_timeout`, `retry_max_times`.
    pub retry: RetryPolicy,
    /// Host handling (see `hosts.rs`).
    pub hosts: HostOptions,
    /// `verify_es_version_at_startup`.
    pub detect_version: bool,
    /// `default_elasticsearch_version`: the major version assumed without detection.
    pub default_major_version: u32,
}

/// How the output treats its hosts, as fluent-plugin-elasticsearch's transport does.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// `resurrect_after`: a failed host is skipped this long, doubled per further failure.
    pub resurrect_after: Duration,
    /// `reload_connections` (+ `reload_after`): rediscover the HTTP nodes every N requests.
    pub reload_every: Option<u64>,
    /// `reload_on_failure`: rediscover the nodes when a request failed on every host.
    pub reload_on_failure: bool,
    /// `reconnect_on_error`: after any failed request, new connections and the configured
    /// hosts again.
    pub reconnect_on_error: bool,
}

/// The elasticsearch-transport gem's default for `reload_connections true`.
pub const DEFAULT_RELOAD_AFTER: u64 = 10_000;

/// An index template read at start-up.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub body: String,
    /// `true`: has a top-level `template` key → `PUT _index_template/NAME`; otherwise the
    /// legacy `PUT _template/NAME`.
    pub composable: bool,
}

impl Template {
    pub fn api_path(&self) -> String {
        if self.composable {
            format!("_index_template/{}", self.name)
        } else {
            format!("_template/{}", self.name)
        }
    }
}

/// Default `bulk_message_request_threshold`: 4 MiB (fluent-plugin-elasticsearch's is 20 MiB).
/// A flush worker holds its chunk and one body: with 8 MiB chunks a 20 MiB threshold meant a
/// whole chunk's NDJSON (~14 MiB, and twice that while the buffer grew) per worker; 4 MiB
/// bodies keep a file-buffered output within 64 MiB (docs/durability.md, memory) and are still
/// in the size range Elasticsearch recommends for `_bulk`.
pub const DEFAULT_BULK_THRESHOLD: usize = 4 * 1024 * 1024;

fn base_url(host: &str, scheme: &str, path: Option<&str>) -> Result<String, String> {
    let host = host.trim();
    if host.is_empty() {
        return Err("empty host in 'hosts'".into());
    }
    let mut url = if host.contains("://") {
        host.trim_end_matches('/').to_string()
    } else if (host.contains(':') && !host.starts_with('[') && host.matches(':').count() == 1)
        || (host.starts_with('[') && host.contains("]:"))
    {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:9200")
    };
    if let Some(p) = path {
        let p = p.trim_matches('/');
        if !p.is_empty() {
            url.push('/');
            url.push_str(p);
        }
    }
    reqwest::Url::parse(&url).map_err(|e| format!("invalid Elasticsearch URL {url}: {e}"))?;
    Ok(url)
}

impl EsSettings {
    /// Checks `cfg` and reads the template file.
    pub fn from_config(cfg: &ElasticsearchConfig) -> Result<Self, String> {
        let password = secret_param(
            cfg.password.as_ref(),
            cfg.password_file.as_deref(),
            "password_file",
        )?;
        let api_key = secret_param(
            cfg.api_key.as_ref(),
            cfg.api_key_file.as_deref(),
            "api_key_file",
        )?;
        let configured =
            Credentials::from_params(cfg.user.as_deref(), password.as_ref(), api_key.as_ref())?;
        let mut base_urls = Vec::new();
        let mut credentials = Vec::new();
        for h in &cfg.hosts {
            let (url, userinfo) = split_userinfo(&base_url(h, &cfg.scheme, cfg.path.as_deref())?)?;
            base_urls.push(url);
            credentials.push(match userinfo {
                Some((user, password)) => {
                    Credentials::from_params(Some(&user), Some(&password), None)?
                }
                None => configured.clone(),
            });
        }
        let tls = TlsOptions {
            ca_file: cfg.ca_file.as_ref().map(PathBuf::from),
            verify: cfg.ssl_verify,
            client_cert: cfg.client_cert.as_ref().map(PathBuf::from),
            client_key: cfg.client_key.as_ref().map(PathBuf::from),
            client_key_pass: cfg.client_key_pass.clone(),
            min_version: cfg.ssl_min_version.unwrap_or(TlsVersion::Tls1_2),
            max_version: cfg.ssl_max_version.unwrap_or(TlsVersion::Tls1_3),
        };
        let naming = if cfg.logstash_format {
            IndexNaming::Logstash {
                prefix: cfg.logstash_prefix.clone(),
                separator: cfg.logstash_prefix_separator.clone(),
                dateformat: cfg.logstash_dateformat.clone(),
            }
        } else {
            IndexNaming::Name(cfg.index_name.clone())
        };
        let template = match (&cfg.template_name, &cfg.template_file) {
            (Some(name), Some(file)) => {
                let body = std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read template_file {file}: {e}"))?;
                let v: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| format!("template_file {file} is not JSON: {e}"))?;
                Some(Template {
                    name: name.clone(),
                    composable: v.get("template").is_some(),
                    body,
                })
            }
            _ => None,
        };
        let b = cfg.buffer.as_ref();
        let mut buffer = BufferSettings::from_config(b);
        if b.is_none() {
            buffer.flush_interval = Duration::from_secs(60);
        }
        Ok(Self {
            base_urls,
            credentials,
            tls,
            naming,
            utc_index: cfg.utc_index,
            include_tag_key: cfg.include_tag_key,
            tag_key: cfg.tag_key.clone(),
            id_key: cfg.id_key.clone(),
            metadata_key: cfg.metadata_key.clone(),
            writes_timestamp: cfg.logstash_format || cfg.include_timestamp,
            time_key: cfg.time_key.clone(),
            time_key_format: cfg.time_key_format.clone(),
            time_key_exclude_timestamp: cfg.time_key_exclude_timestamp,
            target_index_path: cfg
                .target_index_key
                .as_ref()
                .map(|k| k.split('.').map(str::to_string).collect()),
            log_es_400_reason: cfg.log_es_400_reason,
            write_operation: if cfg.write_operation == "index" {
                WriteOperation::Index
            } else {
                WriteOperation::Create
            },
            template,
            template_overwrite: cfg.template_overwrite,
            request_timeout: cfg.request_timeout,
            bulk_threshold: usize::try_from(cfg.bulk_message_request_threshold)
                .unwrap_or(usize::MAX)
                .max(1),
            compression_level: cfg.compression_level,
            dead_letter_path: cfg.dead_letter_path.clone(),
            buffer,
            flush_thread_count: b.map_or(1, |b| b.flush_thread_count.max(1) as usize),
            retry: RetryPolicy::from_config(b),
            hosts: HostOptions {
                resurrect_after: cfg.resurrect_after,
                reload_every: cfg
                    .reload_connections
                    .then_some(cfg.reload_after.unwrap_or(DEFAULT_RELOAD_AFTER)),
                reload_on_failure: cfg.reload_on_failure,
                reconnect_on_error: cfg.reconnect_on_error,
            },
            detect_version: cfg.verify_es_version_at_startup,
            default_major_version: cfg.default_elasticsearch_version,
        })
    }

    /// The index for an event of `tag` at `time` (lower-cased, as Elasticsearch requires).
    pub fn index_for(&self, tag: &str, time: EventTime) -> String {
        let secs = if self.utc_index {
            time.secs
        } else {
            time.secs + local_offset_secs(time.secs)
        };
        let name = match &self.naming {
            IndexNaming::Logstash {
                prefix,
                separator,
                dateformat,
            } => format!(
                "{}{}{}",
                prefix.replace("${tag}", tag),
                separator,
                timefmt::strftime(dateformat, secs)
            ),
            IndexNaming::Name(n) => timefmt::strftime(&n.replace("${tag}", tag), secs),
        };
        name.to_lowercase()
    }
}

/// A secret given in the config, or read from `file` (a mounted secret): the file's content
/// without its final line break.
fn secret_param(
    value: Option<&Secret>,
    file: Option<&str>,
    file_param: &str,
) -> Result<Option<Secret>, String> {
    match (value, file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {file_param} {f}: {e}"))?;
            let v = text.strip_suffix('\n').unwrap_or(&text);
            let v = v.strip_suffix('\r').unwrap_or(v);
            if v.is_empty() {
                return Err(format!("{file_param} {f} is empty"));
            }
            Ok(Some(Secret::new(v)))
        }
        (None, None) => Ok(None),
    }
}

fn local_offset_secs(secs: i64) -> i64 {
    use chrono::{Offset, TimeZone};
    match chrono::Local.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            i64::from(t.offset().fix().local_minus_utc())
        }
        chrono::LocalResult::None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_bulk_threshold_is_the_plugins_default() {
        let cfg = crate::config::Config::from_str_at(
            "<match **>\n@type elasticsearch\n</match>\n",
            std::path::Path::new("t.conf"),
        )
        .unwrap();
        let crate::config::Directive::Match(m) = &cfg.root.directives[0] else {
            panic!()
        };
        let es = EsSettings::from_config(m.config::<ElasticsearchConfig>().unwrap()).unwrap();
        assert_eq!(es.bulk_threshold, DEFAULT_BULK_THRESHOLD);
    }

    fn es(params: &str) -> Result<crate::config::Config, Vec<crate::config::ConfigError>> {
        crate::config::Config::from_str_at(
            &format!("<match **>\n  @type elasticsearch\n{params}</match>\n"),
            std::path::Path::new("t.conf"),
        )
    }

    fn es_config(c: &crate::config::Config) -> &ElasticsearchConfig {
        let crate::config::Directive::Match(m) = &c.root.directives[0] else {
            panic!()
        };
        m.config::<ElasticsearchConfig>().unwrap()
    }

    fn errors(params: &str) -> Vec<String> {
        es(params)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn tls_and_credentials_are_read_and_never_shown() {
        let c = es("  scheme https\n  user elastic\n  password s3cret\n  ca_file /ca.pem\n  client_cert /c.pem\n  client_key /k.pem\n  client_key_pass pa55\n  ssl_min_version TLSv1_2\n  ssl_max_version TLSv1_3\n  ssl_verify false\n").unwrap();
        let e = es_config(&c);
        assert_eq!(e.ssl_min_version, Some(TlsVersion::Tls1_2));
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(e.client_key_pass.as_ref().map(Secret::expose), Some("pa55"));
        assert!(c.no_effect.is_empty(), "{:?}", c.no_effect);
        // No secret in the Debug form, nor in check-config's description.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("pa55"),
            "{debug}"
        );
        let d = c.describe();
        assert!(!d.contains("s3cret") && !d.contains("pa55"), "{d}");
        assert!(d.contains("basic auth as user \"elastic\"; TLS ca_file=/ca.pem client_cert=/c.pem ssl_verify=false versions=TLSv1_2..TLSv1_3"), "{d}");
        let c = es("  hosts https://u:pw@h:9200\n").unwrap();
        assert!(
            c.describe().contains("hosts=https://u:***@h:9200 "),
            "{}",
            c.describe()
        );
        let c = es("  api_key id:k3y\n").unwrap();
        assert!(c.describe().contains("(API key)"), "{}", c.describe());
        assert!(!format!("{c:?}").contains("k3y"));
    }

    #[test]
    fn ssl_version_and_tls_on_plain_http_have_no_effect_and_say_so() {
        let c = es("  scheme https\n  ssl_version TLSv1_2\n").unwrap();
        assert_eq!(c.no_effect.len(), 1, "{:?}", c.no_effect);
        let report = c.no_effect_report();
        assert!(
            report[0].starts_with("ssl_version: as in fluent-plugin-elasticsearch")
                && report[0].ends_with("(t.conf:4 in <match **> (@type elasticsearch))"),
            "{report:?}"
        );
        // Every TLS parameter given while every host is plain http.
        let c =
            es("  ca_file /ca.pem\n  ssl_verify false\n  hosts http://a:9200,b:9200\n").unwrap();
        assert_eq!(
            c.no_effect_report(),
            [
                "ca_file: no host uses https (set `scheme https` or write https:// hosts) (t.conf:3 in <match **> (@type elasticsearch))",
                "ssl_verify: no host uses https (set `scheme https` or write https:// hosts) (t.conf:4 in <match **> (@type elasticsearch))",
            ]
        );
        // One https host is enough.
        let c = es("  ca_file /ca.pem\n  hosts http://a:9200,https://b:9200\n").unwrap();
        assert!(c.no_effect.is_empty(), "{:?}", c.no_effect);
    }

    #[test]
    fn tls_and_credential_conflicts_are_errors() {
        assert_eq!(
            errors("  ssl_min_version TLSv1_2\n"),
            ["t.conf:1: ssl_min_version and ssl_max_version must be set together"]
        );
        assert_eq!(
            errors("  ssl_max_version TLSv9\n"),
            ["t.conf:3: parameter 'ssl_max_version' in <match **> (@type elasticsearch): invalid value \"TLSv9\"; supported: TLSv1, TLSv1_1, TLSv1_2, TLSv1_3"]
        );
        assert!(errors("  ssl_version SSLv3\n")[0]
            .starts_with("t.conf:3: parameter 'ssl_version' in <match **> (@type elasticsearch): invalid value \"SSLv3\""));
        assert_eq!(
            errors("  client_cert /c.pem\n"),
            ["t.conf:1: client_cert and client_key must be set together"]
        );
        assert_eq!(
            errors("  user u\n  password p\n  api_key a:b\n"),
            ["t.conf:1: set either user/password or api_key, not both"]
        );
        assert_eq!(
            errors("  user u\n"),
            ["t.conf:1: 'password' (or password_file) must be present if 'user' is present"]
        );
        assert_eq!(
            errors("  password p\n"),
            ["t.conf:1: 'user' must be present if 'password' is present"]
        );
        assert_eq!(
            errors("  user u\n  password p\n  password_file /p\n"),
            ["t.conf:1: set either password or password_file, not both"]
        );
        assert_eq!(
            errors("  api_key a\n  api_key_file /k\n"),
            ["t.conf:1: set either api_key or api_key_file, not both"]
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("es:9201", "https", Some("/proxy/")).unwrap(),
            "https://es:9201/proxy"
        );
        assert_eq!(base_url("es", "http", None).unwrap(), "http://es:9200");
        assert_eq!(
            base_url("http://u:p@es:1/", "https", None).unwrap(),
            "http://u:p@es:1"
        );
    }
}
