//! Fluentd-syntax configuration.
//!
//! # Layout
//! - [`syntax`]: the generic tree ([`Element`] with name, arg, params carrying file:line,
//!   children), including `@include`, quoting and multi-line values;
//! - [`ruby`]: the embedded-Ruby subset of `"#{...}"` values (`ENV['X'] || 'default'`,
//!   `use_default`, `use_nil`, ...);
//! - [`values`]: Fluentd's value types (sizes, times, booleans, arrays);
//! - [`params`]: how a plugin or section declares its parameters (name, type, default,
//!   status), and the docs' tables rendered from those declarations;
//! - [`section`]: the reader that fills a plugin's typed config from a section by its
//!   declaration, and reports what is unknown, has no effect, or is not supported;
//! - [`registry`]: every `@type`, mapped to the plugin module that declares and reads it;
//! - [`compat`]: Fluentd v0.12's buffer parameters at the `<match>` level, moved into
//!   `<buffer>` (with a warning each) before an output reads them;
//! - [`system`]: the `<system>` section;
//! - this module: the top level — `<source>`, `<filter>`, `<match>`, `<label>` — into a checked
//!   [`Config`].
//!
//! Each plugin declares its own parameters beside its code (e.g. `output/file.rs`); nothing
//! here names a plugin. An unknown `@type`, parameter or section, a value of the wrong type, a
//! parameter declared *not supported*, or a reference to a label that does not exist is an
//! error carrying `file:line` (and, for unknown names, what is supported). All errors of a file
//! are collected, not just the first. Parameters declared *no effect in logship* are accepted
//! and listed in [`Config::no_effect`]: `check-config` prints them and `logship run` logs them
//! once at start (INFO). [`Config::warnings`] (e.g. a translated v0.12 parameter) are printed by
//! `check-config` and logged at `run` start (WARN).

pub mod compat;
pub mod params;
pub mod registry;
pub mod ruby;
pub mod section;
pub mod syntax;
pub mod system;
pub mod values;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

pub use section::{ConfigWarning, Diagnostics, NoEffect};
pub use syntax::{ConfigError, Element, Loc, Param};
pub use system::SystemConfig;

use crate::filter::FilterPlugin;
use crate::output::OutputPlugin;
use crate::pipeline::pattern::TagPattern;
use crate::source::{SourcePlugin, SourceRole};
use section::Section;

/// The default configuration of `logship run` without `-c`: the same as `fluentd/demo.conf`.
pub const DEFAULT_CONFIG: &str = "<source>\n  @type forward\n  port 24224\n  bind 127.0.0.1\n</source>\n\n<match **>\n  @type stdout\n</match>\n";

/// A whole, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub system: SystemConfig,
    pub sources: Vec<SourceDirective>,
    /// Filters and matches outside any `<label>`.
    pub root: LabelConfig,
    /// `<label @NAME>` sections by name (with the `@`).
    pub labels: BTreeMap<String, LabelConfig>,
    /// Parameters and sections given that have no effect in logship, by file and line.
    pub no_effect: Vec<NoEffect>,
    /// What works but should be written otherwise, by file and line.
    pub warnings: Vec<ConfigWarning>,
}

/// The directives of one label (or of the root), in config order.
#[derive(Debug, Clone, Default)]
pub struct LabelConfig {
    pub name: String,
    pub directives: Vec<Directive>,
}

/// A `<filter>` or a `<match>`.
#[derive(Debug, Clone)]
pub enum Directive {
    Filter(FilterDirective),
    Match(MatchDirective),
}

/// A `<source>`.
#[derive(Debug, Clone)]
pub struct SourceDirective {
    pub id: Option<String>,
    /// `@label @X`: route into that label instead of the root.
    pub label: Option<String>,
    pub plugin: Arc<dyn SourcePlugin>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct FilterDirective {
    pub pattern: TagPattern,
    pub id: Option<String>,
    pub plugin: Arc<dyn FilterPlugin>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct MatchDirective {
    pub pattern: TagPattern,
    pub id: Option<String>,
    pub plugin: Arc<dyn OutputPlugin>,
    pub loc: Loc,
}

impl SourceDirective {
    /// The typed config, when the source is a `T`.
    pub fn config<T: 'static>(&self) -> Option<&T> {
        self.plugin.as_any().downcast_ref()
    }
}

impl FilterDirective {
    /// The typed config, when the filter is a `T`.
    pub fn config<T: 'static>(&self) -> Option<&T> {
        self.plugin.as_any().downcast_ref()
    }
}

impl MatchDirective {
    /// The typed config, when the output is a `T`.
    pub fn config<T: 'static>(&self) -> Option<&T> {
        self.plugin.as_any().downcast_ref()
    }
}

fn param_value(el: &Element, key: &str) -> Option<String> {
    el.param(key).map(|p| p.value.clone())
}

fn pattern_of(el: &Element, diag: &mut Diagnostics) -> Option<TagPattern> {
    let arg = match el.arg.trim() {
        "" => "**",
        a => a,
    };
    TagPattern::parse(arg)
        .map_err(|e| {
            diag.error(
                &el.loc,
                format!("invalid tag pattern {arg:?} in <{}>: {e}", el.name),
            )
        })
        .ok()
}

fn directive(el: &Element, diag: &mut Diagnostics) -> Option<Directive> {
    let pattern = pattern_of(el, diag);
    let (id, loc) = (param_value(el, "@id"), el.loc.clone());
    if el.name == "filter" {
        let plugin = registry::parse_filter(el, diag)?;
        Some(Directive::Filter(FilterDirective {
            pattern: pattern?,
            id,
            plugin,
            loc,
        }))
    } else {
        let plugin = registry::parse_output(el, diag)?;
        Some(Directive::Match(MatchDirective {
            pattern: pattern?,
            id,
            plugin,
            loc,
        }))
    }
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
        let mut diag = Diagnostics::default();
        let mut cfg = Config {
            system: SystemConfig::default(),
            sources: Vec::new(),
            root: LabelConfig::default(),
            labels: BTreeMap::new(),
            no_effect: Vec::new(),
            warnings: Vec::new(),
        };
        for p in &root.params {
            diag.error(
                &p.loc,
                format!("parameter '{}' outside of any section", p.key),
            );
        }
        for el in &root.children {
            match el.name.as_str() {
                "filter" | "match" => cfg.root.directives.extend(directive(el, &mut diag)),
                "system" => {
                    let mut s =
                        Section::of_spec(el, "<system>".into(), &system::SECTION, &mut diag);
                    cfg.system = system::parse(&mut s);
                    s.finish();
                }
                "source" => {
                    if let Some(plugin) = registry::parse_source(el, &mut diag) {
                        cfg.sources.push(SourceDirective {
                            id: param_value(el, "@id"),
                            label: param_value(el, "@label"),
                            plugin,
                            loc: el.loc.clone(),
                        });
                    }
                }
                "label" => {
                    if let Some(label) = label(el, &cfg.labels, &mut diag) {
                        cfg.labels.insert(label.name.clone(), label);
                    }
                }
                "worker" => diag.error(
                    &el.loc,
                    "<worker> sections are not supported (logship runs one worker)",
                ),
                other => diag.error(
                    &el.loc,
                    format!("unknown top-level section <{other}>; supported: <system>, <source>, <filter>, <match>, <label>"),
                ),
            }
        }
        cfg.check_label_references(&mut diag);
        if diag.errors.is_empty() {
            cfg.no_effect = diag.no_effect;
            // Sections report when they are finished, inner ones first: order by place.
            cfg.no_effect
                .sort_by(|a, b| (&a.loc.file, a.loc.line).cmp(&(&b.loc.file, b.loc.line)));
            cfg.warnings = diag.warnings;
            Ok(cfg)
        } else {
            Err(diag.errors)
        }
    }

    /// Every `@label` a source, an output or a filter sends to must exist.
    fn check_label_references(&self, diag: &mut Diagnostics) {
        let mut refs: Vec<(&str, &Loc)> = self
            .sources
            .iter()
            .filter_map(|s| s.label.as_deref().map(|l| (l, &s.loc)))
            .collect();
        for d in self.all_directives() {
            match d {
                Directive::Match(m) => {
                    refs.extend(m.plugin.labels().into_iter().map(|l| (l, &m.loc)))
                }
                Directive::Filter(f) => {
                    refs.extend(f.plugin.labels().into_iter().map(|l| (l, &f.loc)))
                }
            }
        }
        for (l, loc) in refs {
            if !self.labels.contains_key(l) {
                let known: Vec<&str> = self.labels.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                };
                diag.error(
                    loc,
                    format!(
                        "@label {l} refers to a label that is not defined; defined labels: {known}"
                    ),
                );
            }
        }
    }

    fn all_directives(&self) -> impl Iterator<Item = &Directive> {
        self.root
            .directives
            .iter()
            .chain(self.labels.values().flat_map(|l| l.directives.iter()))
    }

    /// A human-readable description of the effective pipeline (for `check-config`).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "sources:");
        for src in &self.sources {
            let _ = write!(s, "  {}", src.plugin.describe());
            if src.plugin.role() == SourceRole::Events {
                let _ = write!(s, " -> {}", src.label.as_deref().unwrap_or("root"));
            }
            let _ = writeln!(s, "   [{}]", src.loc);
        }
        let mut describe_label = |name: &str, l: &LabelConfig| {
            let _ = writeln!(s, "{name}:");
            if l.directives.is_empty() {
                let _ = writeln!(s, "  (no directives)");
            }
            for (i, d) in l.directives.iter().enumerate() {
                let (kind, pattern, what, loc) = match d {
                    Directive::Filter(f) => ("filter", &f.pattern, f.plugin.describe(), &f.loc),
                    Directive::Match(m) => ("match ", &m.pattern, m.plugin.describe(), &m.loc),
                };
                let _ = writeln!(s, "  {:>2}. {kind} {pattern} -> {what}   [{loc}]", i + 1);
            }
        };
        describe_label("routes (root)", &self.root);
        for (name, l) in &self.labels {
            describe_label(&format!("routes (label {name})"), l);
        }
        s
    }

    /// One line per parameter (or section) given with no effect in logship: its name, why,
    /// and every place it was given.
    pub fn no_effect_report(&self) -> Vec<String> {
        let mut groups: Vec<(&str, &str, Vec<String>)> = Vec::new();
        for n in &self.no_effect {
            let place = format!("{} in {}", n.loc, n.section);
            match groups
                .iter_mut()
                .find(|(name, reason, _)| *name == n.name && *reason == n.reason)
            {
                Some(g) => g.2.push(place),
                None => groups.push((&n.name, &n.reason, vec![place])),
            }
        }
        groups
            .into_iter()
            .map(|(name, reason, places)| format!("{name}: {reason} ({})", places.join("; ")))
            .collect()
    }
}

/// Reads `<label @NAME>`.
fn label(
    el: &Element,
    known: &BTreeMap<String, LabelConfig>,
    diag: &mut Diagnostics,
) -> Option<LabelConfig> {
    let name = el.arg.trim().to_string();
    if !name.starts_with('@') || name.contains(char::is_whitespace) {
        diag.error(
            &el.loc,
            format!("label name must be one word starting with '@', got {name:?}"),
        );
        return None;
    }
    if known.contains_key(&name) {
        diag.error(&el.loc, format!("label {name} is defined twice"));
        return None;
    }
    for p in &el.params {
        diag.error(&p.loc, format!("unknown parameter '{}' in <label>", p.key));
    }
    let mut directives = Vec::new();
    for c in &el.children {
        match c.name.as_str() {
            "filter" | "match" => directives.extend(directive(c, diag)),
            other => diag.error(
                &c.loc,
                format!("unknown section <{other}> in <label>; supported: <filter>, <match>"),
            ),
        }
    }
    Some(LabelConfig { name, directives })
}

#[cfg(test)]
mod tests;
