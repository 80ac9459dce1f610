//! Validated settings of `@type elasticsearch`: base URLs, index naming, request options.

use std::time::Duration;

use crate::buffer::BufferSettings;
use crate::config::ElasticsearchConfig;
use crate::event::EventTime;
use crate::output::timefmt;

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
    /// `scheme://host:port[/path]` without a trailing slash, one per host (round robin).
    pub base_urls: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub naming: IndexNaming,
    pub utc_index: bool,
    pub include_tag_key: bool,
    pub tag_key: String,
    pub id_key: Option<String>,
    /// `logstash_format` or `include_timestamp`: documents get `@timestamp`.
    pub writes_timestamp: bool,
    pub time_key: Option<String>,
    pub time_key_format: Option<String>,
    pub time_key_exclude_timestamp: bool,
    /// `target_index_key` split at dots.
    pub target_index_path: Option<Vec<String>>,
    pub log_es_400_reason: bool,
    /// `metadata_key`: store non-empty Forward v1.5 metadata under this key.
    pub metadata_key: Option<String>,
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
    pub retry_wait: Duration,
    pub retry_max_interval: Duration,
    pub retry_forever: bool,
    pub retry_timeout: Duration,
    /// `retry_max_times` of `<buffer>`: give a chunk up after this many retries.
    pub retry_max_times: Option<u64>,
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

/// Default `bulk_message_request_threshold` (fluent-plugin-elasticsearch's 20 MiB).
pub const DEFAULT_BULK_THRESHOLD: usize = 20 * 1024 * 1024;

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
        let base_urls = cfg
            .hosts
            .iter()
            .map(|h| base_url(h, &cfg.scheme, cfg.path.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
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
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            naming,
            utc_index: cfg.utc_index,
            include_tag_key: cfg.include_tag_key,
            tag_key: cfg.tag_key.clone(),
            id_key: cfg.id_key.clone(),
            writes_timestamp: cfg.logstash_format || cfg.include_timestamp,
            time_key: cfg.time_key.clone(),
            time_key_format: cfg.time_key_format.clone(),
            time_key_exclude_timestamp: cfg.time_key_exclude_timestamp,
            target_index_path: cfg
                .target_index_key
                .as_ref()
                .map(|k| k.split('.').map(str::to_string).collect()),
            log_es_400_reason: cfg.log_es_400_reason,
            metadata_key: cfg.metadata_key.clone(),
            write_operation: if cfg.write_operation == "index" {
                WriteOperation::Index
            } else {
                WriteOperation::Create
            },
            template,
            template_overwrite: cfg.template_overwrite,
            request_timeout: cfg.request_timeout,
            bulk_threshold: cfg
                .bulk_message_request_threshold
                .map_or(DEFAULT_BULK_THRESHOLD, |v| {
                    usize::try_from(v).unwrap_or(usize::MAX).max(1)
                }),
            compression_level: cfg.compression_level,
            dead_letter_path: cfg.dead_letter_path.clone(),
            buffer,
            flush_thread_count: b.map_or(1, |b| b.flush_thread_count.max(1) as usize),
            retry_wait: b.map_or(Duration::from_secs(1), |b| b.retry_wait),
            retry_max_interval: b
                .and_then(|b| b.retry_max_interval)
                .unwrap_or(Duration::from_secs(60)),
            retry_forever: b.is_some_and(|b| b.retry_forever),
            retry_timeout: b.map_or(Duration::from_secs(72 * 3600), |b| b.retry_timeout),
            retry_max_times: b.and_then(|b| b.retry_max_times),
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
