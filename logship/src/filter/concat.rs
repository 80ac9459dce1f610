//! Reassembly of Docker's split lines: `@type concat` with `use_partial_metadata true`
//! (fluent-plugin-concat's mode for Docker's fluentd driver), also available as
//! `@type docker_partial` (same parameters; `key` defaults to `log`, `separator` to `""`).
//!
//! Docker splits a line longer than 16 KiB into records carrying `partial_message: "true"`,
//! a shared `partial_id`, `partial_ordinal` ("1", "2", …) and `partial_last` ("true" on the
//! final piece). This filter holds the pieces of each `partial_id` (per tag, and per
//! `stream_identity_key` value when set) and, once the last piece and all ordinals before it
//! have arrived, emits one record: the first piece's fields with `key` set to the pieces'
//! `key` values joined by `separator` (fluent-plugin-concat's default `"\n"` for `@type concat`
//! — set `separator ""` to get Docker's original line back), and the `partial_*` fields
//! removed (kept with `keep_partial_metadata true`). Its time is the last piece's time, or the
//! first's with `use_first_timestamp true`.
//!
//! Records without `partial_message: "true"` pass through untouched and in order.
//! A group that gets no new piece for `flush_interval` (default 60s; 0 = wait forever) is
//! flushed with what was collected and a WARN, either down the pipeline or to
//! `timeout_label` when set; at shutdown every pending group is flushed the same way.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Filter, FilterPlugin};
use crate::config::params::ParamSpec;
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::event::{Event, EventBatch, EventTime};
use crate::pipeline::record;

/// `@type concat` (with `use_partial_metadata true`) or `@type docker_partial`, checked.
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

const OTHER_MODES: &str =
    "only Docker's partial-line metadata is joined (use_partial_metadata true)";

/// The parameters both spellings share; `key`, `separator` and `use_partial_metadata` differ.
macro_rules! concat_params {
    ($($first:expr),* $(,)?) => {
        &[
            $($first,)*
            ParamSpec::choice("partial_metadata_format", &["docker-fluentd"]).default("docker-fluentd").doc("only Docker's fluentd driver's `partial_*` fields"),
            ParamSpec::bool("keep_partial_metadata").default("false").doc("keep the `partial_*` fields in the joined record"),
            ParamSpec::time("flush_interval").default("60s").doc("a group with no new piece for this long is flushed incomplete, with a WARN (0: wait forever)"),
            ParamSpec::bool("use_first_timestamp").default("false").doc("the joined record takes the first piece's time (default: the last's)"),
            ParamSpec::string("stream_identity_key").doc("group pieces per value of this field too"),
            ParamSpec::string("timeout_label").doc("send groups flushed by timeout to this label"),
            ParamSpec::integer("n_lines").not_supported(OTHER_MODES),
            ParamSpec::string("multiline_start_regexp").not_supported(OTHER_MODES),
            ParamSpec::string("multiline_end_regexp").not_supported(OTHER_MODES),
            ParamSpec::string("continuous_line_regexp").not_supported(OTHER_MODES),
            ParamSpec::string("partial_key").not_supported(OTHER_MODES),
            ParamSpec::string("partial_value").not_supported(OTHER_MODES),
            ParamSpec::bool("keep_partial_key").not_supported(OTHER_MODES),
            ParamSpec::bool("use_partial_cri_logtag").not_supported(OTHER_MODES),
        ]
    };
}

static CONCAT_PARAMS: &[ParamSpec] = concat_params![
    ParamSpec::string("key").required().doc("the field whose pieces are joined"),
    ParamSpec::string("separator").default("\n").doc("put between the pieces (`\"\"` gives Docker's original line back)"),
    ParamSpec::bool("use_partial_metadata").default("false").doc("must be `true`: join by Docker's `partial_message`/`partial_id`/`partial_ordinal`/`partial_last`"),
];

static DOCKER_PARTIAL_PARAMS: &[ParamSpec] = concat_params![
    ParamSpec::string("key")
        .default("log")
        .doc("the field whose pieces are joined"),
    ParamSpec::string("separator")
        .default("")
        .doc("put between the pieces"),
    ParamSpec::bool("use_partial_metadata")
        .default("true")
        .doc("must be `true`"),
];

/// `@type concat` (fluent-plugin-concat's Docker mode).
pub static CONCAT: PluginSpec<dyn FilterPlugin> = PluginSpec {
    type_name: "concat",
    summary:
        "Joins Docker's partial lines (fluent-plugin-concat with `use_partial_metadata true`).",
    params: CONCAT_PARAMS,
    sections: &[],
    parse,
};

/// `@type docker_partial`: logship's name for the same filter with Docker's defaults.
pub static DOCKER_PARTIAL: PluginSpec<dyn FilterPlugin> = PluginSpec {
    type_name: "docker_partial",
    summary: "logship's spelling of `concat` with Docker's defaults (`key log`, `separator \"\"`).",
    params: DOCKER_PARTIAL_PARAMS,
    sections: &[],
    parse,
};

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn FilterPlugin> {
    let cfg = ConcatConfig {
        key: s.get("key"),
        separator: s.get("separator"),
        flush_interval: s.get("flush_interval"),
        keep_partial_metadata: s.get("keep_partial_metadata"),
        use_first_timestamp: s.get("use_first_timestamp"),
        stream_identity_key: s.opt("stream_identity_key"),
        timeout_label: s.opt("timeout_label"),
    };
    let _format: String = s.get("partial_metadata_format");
    if !s.get::<bool>("use_partial_metadata") {
        let msg = format!(
            "{}: only use_partial_metadata true (Docker's partial_* fields) is supported",
            s.what()
        );
        s.error_here(msg);
    }
    Arc::new(cfg)
}

impl FilterPlugin for ConcatConfig {
    /// Both spellings count as `concat` in plugin ids and metrics.
    fn type_name(&self) -> &'static str {
        "concat"
    }
    fn describe(&self) -> String {
        format!(
            "concat key={} flush_interval={}s",
            self.key,
            self.flush_interval.as_secs_f64()
        )
    }
    fn labels(&self) -> Vec<&str> {
        self.timeout_label.as_deref().into_iter().collect()
    }
    fn build(&self) -> Arc<dyn Filter> {
        Arc::new(ConcatFilter::new(self.clone()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

const PARTIAL_KEYS: [&str; 4] = [
    "partial_message",
    "partial_id",
    "partial_ordinal",
    "partial_last",
];

/// Pending groups beyond this are flushed oldest first, so memory stays bounded.
const MAX_PENDING_GROUPS: usize = 10_000;

#[derive(Hash, PartialEq, Eq, Clone, Debug)]
struct GroupKey {
    tag: String,
    stream: Vec<u8>,
    id: Vec<u8>,
}

struct Pending {
    pieces: BTreeMap<u64, Event>,
    last_ordinal: Option<u64>,
    last_seen: Instant,
    created: Instant,
}

pub struct ConcatFilter {
    cfg: ConcatConfig,
    pending: Mutex<HashMap<GroupKey, Pending>>,
}

fn truthy(raw: Option<&[u8]>) -> bool {
    match raw {
        Some(v) => match record::read_str(v, 0) {
            Some((s, _)) => s == b"true",
            None => v == [0xc3],
        },
        None => false,
    }
}

fn ordinal(raw: Option<&[u8]>) -> Option<u64> {
    let v = raw?;
    if let Some((s, _)) = record::read_str(v, 0) {
        return std::str::from_utf8(s).ok()?.trim().parse().ok();
    }
    let mut rd = v;
    rmp::decode::read_int::<u64, _>(&mut rd).ok()
}

impl ConcatFilter {
    pub fn new(cfg: ConcatConfig) -> Self {
        Self {
            cfg,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Number of partial groups waiting for more pieces.
    pub fn pending_groups(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Joins the pieces of a group into one event.
    fn join(&self, p: &Pending) -> Option<Event> {
        let first = p.pieces.values().next()?;
        let last = p.pieces.values().next_back()?;
        let mut joined: Vec<u8> = Vec::new();
        for (i, ev) in p.pieces.values().enumerate() {
            if i > 0 {
                joined.extend_from_slice(self.cfg.separator.as_bytes());
            }
            if let Some(s) = record::find_str(&ev.record, &self.cfg.key) {
                joined.extend_from_slice(s);
            }
        }
        let entries = record::entries(&first.record).ok()?;
        let joined_enc = record::encode_str(&joined);
        let key_enc = record::encode_str(self.cfg.key.as_bytes());
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(entries.len());
        let mut have_key = false;
        for e in &entries {
            let k = e.key.unwrap_or(b"");
            if !self.cfg.keep_partial_metadata && PARTIAL_KEYS.iter().any(|pk| pk.as_bytes() == k) {
                continue;
            }
            if k == self.cfg.key.as_bytes() {
                have_key = true;
                pairs.push((e.raw_key, &joined_enc));
            } else {
                pairs.push((e.raw_key, e.raw_value));
            }
        }
        if !have_key {
            pairs.push((&key_enc, &joined_enc));
        }
        let time: EventTime = if self.cfg.use_first_timestamp {
            first.time
        } else {
            last.time
        };
        // The joined event keeps the first piece's Forward v1.5 metadata.
        Some(Event::with_metadata(
            time,
            Bytes::from(record::build_map(pairs)),
            first.metadata.clone(),
        ))
    }

    fn complete(p: &Pending) -> bool {
        match p.last_ordinal {
            Some(last) => {
                (1..=last).all(|o| p.pieces.contains_key(&o)) || p.pieces.len() as u64 >= last
            }
            None => false,
        }
    }
}

impl Filter for ConcatFilter {
    fn filter(&self, tag: &str, events: Vec<Event>) -> Vec<Event> {
        let mut out = Vec::with_capacity(events.len());
        let mut overflow: Vec<Event> = Vec::new();
        let Ok(mut pending) = self.pending.lock() else {
            return events;
        };
        for ev in events {
            let Ok(entries) = record::entries(&ev.record) else {
                out.push(ev);
                continue;
            };
            let get = |k: &str| {
                entries
                    .iter()
                    .find(|e| e.key == Some(k.as_bytes()))
                    .map(|e| e.raw_value)
            };
            if !truthy(get("partial_message")) {
                out.push(ev);
                continue;
            }
            let id =
                get("partial_id").and_then(|v| record::read_str(v, 0).map(|(s, _)| s.to_vec()));
            let (Some(id), Some(ord)) = (id, ordinal(get("partial_ordinal"))) else {
                tracing::warn!(
                    tag,
                    "concat: partial record without partial_id/partial_ordinal passed through"
                );
                out.push(ev);
                continue;
            };
            let is_last = truthy(get("partial_last"));
            let stream = self
                .cfg
                .stream_identity_key
                .as_deref()
                .and_then(get)
                .map(|v| v.to_vec())
                .unwrap_or_default();
            let key = GroupKey {
                tag: tag.to_string(),
                stream,
                id,
            };
            let now = Instant::now();
            let p = pending.entry(key.clone()).or_insert_with(|| Pending {
                pieces: BTreeMap::new(),
                last_ordinal: None,
                last_seen: now,
                created: now,
            });
            drop(entries);
            p.pieces.insert(ord, ev);
            p.last_seen = now;
            if is_last {
                p.last_ordinal = Some(ord);
            }
            if Self::complete(p) {
                let p = pending.remove(&key).expect("present");
                if let Some(j) = self.join(&p) {
                    out.push(j);
                }
            }
        }
        if pending.len() > MAX_PENDING_GROUPS {
            let mut keys: Vec<(Instant, GroupKey)> = pending
                .iter()
                .map(|(k, p)| (p.created, k.clone()))
                .collect();
            keys.sort_by_key(|(t, _)| *t);
            for (_, k) in keys.into_iter().take(pending.len() - MAX_PENDING_GROUPS) {
                if let Some(p) = pending.remove(&k) {
                    tracing::warn!(tag = %k.tag, pieces = p.pieces.len(), "concat: too many pending partial groups, flushing the oldest incomplete");
                    overflow.extend(self.join(&p));
                }
            }
        }
        out.extend(overflow);
        out
    }

    fn has_timers(&self) -> bool {
        true
    }

    fn flush(&self, force: bool) -> Vec<EventBatch> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let timeout = self.cfg.flush_interval;
        let expired: Vec<GroupKey> = pending
            .iter()
            .filter(|(_, p)| {
                force || (timeout > Duration::ZERO && now.duration_since(p.last_seen) >= timeout)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut batches: Vec<EventBatch> = Vec::new();
        for k in expired {
            let Some(p) = pending.remove(&k) else {
                continue;
            };
            tracing::warn!(
                tag = %k.tag,
                partial_id = %String::from_utf8_lossy(&k.id),
                pieces = p.pieces.len(),
                last_ordinal = ?p.last_ordinal,
                "concat: flushing an incomplete partial message after timeout"
            );
            if let Some(ev) = self.join(&p) {
                match batches.iter_mut().find(|b| *b.tag == k.tag) {
                    Some(b) => b.events.push(ev),
                    None => batches.push(EventBatch::new(k.tag.as_str(), vec![ev])),
                }
            }
        }
        batches
    }

    fn timeout_label(&self) -> Option<&str> {
        self.cfg.timeout_label.as_deref()
    }
}
