//! `@type record_transformer` (`enable_ruby false` only).
//!
//! `<record>` values are templates with the placeholders `${tag}`, `${tag_parts[N]}`
//! (negative N counts from the end), `${tag_prefix[N]}`, `${tag_suffix[N]}`, `${hostname}`,
//! and `${KEY}` / `${record["KEY"]}` for a top-level field of the record. With
//! `auto_typecast true`, a value that is exactly one field placeholder copies the field with its
//! type; otherwise (Fluentd's default `auto_typecast false`) the result is a string: a
//! non-string field is inserted as its JSON text (Fluentd writes Ruby's `to_s`, which is the
//! same for numbers, booleans and strings; `nil` is `""` there and `null` here; a map or array
//! is JSON here and Ruby's inspect form there). An unknown placeholder is left as written.
//! Records that are not maps pass unchanged, with a rate-limited WARN ([`LogLimiter`]). Set fields replace existing ones in place, new ones are appended; then
//! `remove_keys` are removed. `renew_record true` starts from an empty record plus `keep_keys`.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;

use super::{Filter, FilterPlugin};
use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::registry::PluginSpec;
use crate::config::section::Section;
use crate::config::syntax::ValueKind;
use crate::event::Event;
use crate::log_limit::LogLimiter;
use crate::pipeline::record::{self, Entry};

/// `@type record_transformer`, checked.
#[derive(Debug, Clone)]
pub struct RecordTransformerConfig {
    /// `<record>`'s lines: field name and value template, in order.
    pub record: Vec<(String, String)>,
    pub remove_keys: Vec<String>,
    pub keep_keys: Vec<String>,
    pub renew_record: bool,
    /// A value that is exactly one field placeholder keeps the field's type (else a string).
    pub auto_typecast: bool,
}

static PARAMS: &[ParamSpec] = &[
    ParamSpec::bool("enable_ruby")
        .default("false")
        .doc("only `false`: logship runs no Ruby"),
    ParamSpec::bool("renew_record")
        .default("false")
        .doc("start from an empty record plus `keep_keys`"),
    ParamSpec::array("remove_keys").doc("fields removed after `<record>` is applied"),
    ParamSpec::array("keep_keys").doc("with `renew_record`: fields kept"),
    ParamSpec::bool("auto_typecast")
        .default("false")
        .doc("a value that is exactly one `${field}` keeps the field's type (else a string)"),
];

static RECORD: SectionSpec = SectionSpec::new("record", &[])
    .free_form()
    .multiple()
    .doc("`FIELD TEMPLATE` lines: `${tag}`, `${tag_parts[N]}`, `${tag_prefix[N]}`, `${tag_suffix[N]}`, `${hostname}`, `${FIELD}`, `${record[\"FIELD\"]}`.");

/// The registry's entry.
pub static SPEC: PluginSpec<dyn FilterPlugin> = PluginSpec {
    type_name: "record_transformer",
    summary: "Adds fields from templates (`<record>`), removes or keeps keys.",
    params: PARAMS,
    sections: &[&RECORD],
    parse,
};

fn parse(s: &mut Section<'_, '_>) -> Arc<dyn FilterPlugin> {
    if s.get::<bool>("enable_ruby") {
        let loc = s.given("enable_ruby").map(|p| p.loc.clone());
        let loc = loc.unwrap_or_else(|| s.element().loc.clone());
        s.error(
            &loc,
            "enable_ruby true is not supported: logship runs no Ruby",
        );
    }
    let mut record = Vec::new();
    s.children("record", |r| {
        for p in &r.element().params {
            if p.kind == ValueKind::Given {
                record.push((p.key.clone(), p.value.clone()));
            } else {
                let msg = format!(
                    "field '{}' in <record> needs a value, not use_default or use_nil",
                    p.key
                );
                r.error(&p.loc, msg);
            }
        }
    });
    Arc::new(RecordTransformerConfig {
        record,
        renew_record: s.get("renew_record"),
        auto_typecast: s.get("auto_typecast"),
        remove_keys: s.opt("remove_keys").unwrap_or_default(),
        keep_keys: s.opt("keep_keys").unwrap_or_default(),
    })
}

impl FilterPlugin for RecordTransformerConfig {
    fn type_name(&self) -> &'static str {
        "record_transformer"
    }
    fn describe(&self) -> String {
        let keys: Vec<&str> = self.record.iter().map(|(k, _)| k.as_str()).collect();
        format!("record_transformer record=[{}]", keys.join(", "))
    }
    fn build(&self) -> Arc<dyn Filter> {
        Arc::new(RecordTransformer::new(self))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::enum_variant_names)]
enum Part {
    Lit(String),
    Tag,
    TagPart(i64),
    TagPrefix(i64),
    TagSuffix(i64),
    Hostname,
    Field(String),
}

struct Field {
    key: Vec<u8>,
    raw_key: Vec<u8>,
    parts: Vec<Part>,
}

pub struct RecordTransformer {
    fields: Vec<Field>,
    remove_keys: Vec<String>,
    keep_keys: Vec<String>,
    renew_record: bool,
    hostname: String,
    needs_record: bool,
    auto_typecast: bool,
    /// Rate limit of the WARN about records that are not maps.
    warn: LogLimiter,
}

fn compile(t: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            lit.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let name = after[..j].trim();
        let idx = |p: &str| {
            name.strip_prefix(p)
                .and_then(|x| x.strip_suffix(']'))
                .and_then(|x| x.trim().parse::<i64>().ok())
        };
        let part = if name == "tag" {
            Some(Part::Tag)
        } else if name == "hostname" {
            Some(Part::Hostname)
        } else if let Some(n) = idx("tag_parts[") {
            Some(Part::TagPart(n))
        } else if let Some(n) = idx("tag_prefix[") {
            Some(Part::TagPrefix(n))
        } else if let Some(n) = idx("tag_suffix[") {
            Some(Part::TagSuffix(n))
        } else if let Some(k) = name
            .strip_prefix("record[")
            .and_then(|x| x.strip_suffix(']'))
            .map(|x| x.trim().trim_matches(|c| c == '"' || c == '\''))
        {
            Some(Part::Field(k.to_string()))
        } else if !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'@' || b == b'.'
            })
        {
            Some(Part::Field(name.to_string()))
        } else {
            None
        };
        match part {
            Some(p) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(p);
            }
            None => lit.push_str(&rest[i..i + 3 + j]),
        }
        rest = &after[j + 1..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    parts
}

fn index(parts: &[&str], n: i64) -> Option<usize> {
    let i = if n < 0 { parts.len() as i64 + n } else { n };
    usize::try_from(i).ok().filter(|&i| i < parts.len())
}

impl RecordTransformer {
    pub fn new(cfg: &RecordTransformerConfig) -> Self {
        Self::with_hostname(
            cfg,
            gethostname::gethostname().to_string_lossy().into_owned(),
        )
    }

    pub fn with_hostname(cfg: &RecordTransformerConfig, hostname: String) -> Self {
        let fields: Vec<Field> = cfg
            .record
            .iter()
            .map(|(k, v)| Field {
                key: k.as_bytes().to_vec(),
                raw_key: record::encode_str(k.as_bytes()),
                parts: compile(v),
            })
            .collect();
        let needs_record = fields
            .iter()
            .any(|f| f.parts.iter().any(|p| matches!(p, Part::Field(_))));
        Self {
            fields,
            remove_keys: cfg.remove_keys.clone(),
            keep_keys: cfg.keep_keys.clone(),
            renew_record: cfg.renew_record,
            hostname,
            needs_record,
            auto_typecast: cfg.auto_typecast,
            warn: LogLimiter::new(5, std::time::Duration::from_secs(10)),
        }
    }

    /// The encoded value of `f` for this event.
    fn value(&self, f: &Field, tag: &str, tag_parts: &[&str], entries: &[Entry<'_>]) -> Vec<u8> {
        let field = |k: &str| entries.iter().find(|e| e.key == Some(k.as_bytes()));
        if let [Part::Field(k)] = f.parts.as_slice() {
            if let Some(e) = field(k).filter(|_| self.auto_typecast) {
                return e.raw_value.to_vec();
            }
        }
        let mut s: Vec<u8> = Vec::new();
        for p in &f.parts {
            match p {
                Part::Lit(l) => s.extend_from_slice(l.as_bytes()),
                Part::Tag => s.extend_from_slice(tag.as_bytes()),
                Part::Hostname => s.extend_from_slice(self.hostname.as_bytes()),
                Part::TagPart(n) => {
                    if let Some(i) = index(tag_parts, *n) {
                        s.extend_from_slice(tag_parts[i].as_bytes());
                    }
                }
                Part::TagPrefix(n) => {
                    if let Some(i) = index(tag_parts, *n) {
                        s.extend_from_slice(tag_parts[..=i].join(".").as_bytes());
                    }
                }
                Part::TagSuffix(n) => {
                    if let Some(i) = index(tag_parts, *n) {
                        s.extend_from_slice(tag_parts[i..].join(".").as_bytes());
                    }
                }
                Part::Field(k) => {
                    if let Some(e) = field(k) {
                        match e.value_str() {
                            Some(v) => s.extend_from_slice(v),
                            None => {
                                let mut j = Vec::new();
                                if crate::msgpack_json::write_json(e.raw_value, &mut j).is_ok() {
                                    s.extend_from_slice(&j);
                                }
                            }
                        }
                    }
                }
            }
        }
        record::encode_str(&s)
    }

    fn transform(&self, tag: &str, tag_parts: &[&str], ev: &Event) -> Option<Event> {
        let entries = record::entries(&ev.record).ok()?;
        let _ = self.needs_record;
        let values: Vec<Vec<u8>> = self
            .fields
            .iter()
            .map(|f| self.value(f, tag, tag_parts, &entries))
            .collect();
        let removed = |k: Option<&[u8]>| {
            k.is_some_and(|k| self.remove_keys.iter().any(|r| r.as_bytes() == k))
        };
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(entries.len() + values.len());
        let mut set = vec![false; self.fields.len()];
        for e in &entries {
            if self.renew_record
                && !e
                    .key
                    .is_some_and(|k| self.keep_keys.iter().any(|kk| kk.as_bytes() == k))
            {
                continue;
            }
            if removed(e.key) {
                continue;
            }
            match self
                .fields
                .iter()
                .position(|f| Some(f.key.as_slice()) == e.key)
            {
                Some(i) => {
                    if !set[i] {
                        set[i] = true;
                        pairs.push((e.raw_key, &values[i]));
                    }
                }
                None => pairs.push((e.raw_key, e.raw_value)),
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !set[i] && !removed(Some(&f.key)) {
                pairs.push((&f.raw_key, &values[i]));
            }
        }
        Some(Event::with_metadata(
            ev.time,
            Bytes::from(record::build_map(pairs)),
            ev.metadata.clone(),
        ))
    }
}

impl Filter for RecordTransformer {
    fn filter(&self, tag: &str, events: Vec<Event>) -> Vec<Event> {
        let tag_parts: Vec<&str> = tag.split('.').collect();
        events
            .into_iter()
            .map(|ev| match self.transform(tag, &tag_parts, &ev) {
                Some(e) => e,
                None => {
                    crate::warn_limited!(
                        self.warn,
                        tag,
                        "record_transformer: record is not a msgpack map, left unchanged"
                    );
                    ev
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            compile("a${tag}b"),
            vec![Part::Lit("a".into()), Part::Tag, Part::Lit("b".into())]
        );
        assert_eq!(compile("${tag_parts[-1]}"), vec![Part::TagPart(-1)]);
        assert_eq!(compile("${record[\"k\"]}"), vec![Part::Field("k".into())]);
        assert_eq!(compile("${ 1 + 1 }"), vec![Part::Lit("${ 1 + 1 }".into())]);
    }
}
