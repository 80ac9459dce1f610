//! The plugin registry: every `@type` logship knows, mapped to the module that declares its
//! parameters and reads them.
//!
//! A plugin is one module exposing a [`PluginSpec`] — its `@type`, a one-line summary, its
//! parameter table, its sections and the function that fills its typed config — plus one line
//! in [`SOURCES`], [`FILTERS`] or [`OUTPUTS`]. Nothing else names it: the router builds
//! outputs and filters through [`crate::output::OutputPlugin`] and
//! [`crate::filter::FilterPlugin`], `logship run` starts sources through
//! [`crate::source::SourcePlugin`], `check-config` asks each for its description, and the
//! docs' parameter tables are rendered from the same declarations ([`markdown`]).

use std::fmt::Write as _;
use std::sync::Arc;

use super::compat;
use super::params::{markdown_section, markdown_table, ParamSpec, SectionSpec};
use super::section::{Diagnostics, Section};
use super::Element;
use crate::filter::FilterPlugin;
use crate::output::OutputPlugin;
use crate::source::SourcePlugin;

/// One plugin type as the registry knows it.
pub struct PluginSpec<P: ?Sized + 'static> {
    /// The `@type`.
    pub type_name: &'static str,
    /// What it does, in one sentence (for the docs).
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    pub sections: &'static [&'static SectionSpec],
    /// Fills the typed config from the section (errors go to the section's diagnostics).
    pub parse: fn(&mut Section<'_, '_>) -> Arc<P>,
}

/// `<source>` plugins.
pub static SOURCES: &[&PluginSpec<dyn SourcePlugin>] = &[
    &crate::forward::source::SPEC,
    &crate::metrics::source::PROMETHEUS,
    &crate::metrics::source::MONITOR_AGENT,
];

/// `<filter>` plugins.
pub static FILTERS: &[&PluginSpec<dyn FilterPlugin>] = &[
    &crate::filter::parser::SPEC,
    &crate::filter::record_transformer::SPEC,
    &crate::filter::concat::CONCAT,
    &crate::filter::concat::DOCKER_PARTIAL,
];

/// `<match>` and `<store>` plugins.
pub static OUTPUTS: &[&PluginSpec<dyn OutputPlugin>] = &[
    &crate::output::stdout::SPEC,
    &crate::output::null::SPEC,
    &crate::output::file::SPEC,
    &crate::output::copy::SPEC,
    &crate::output::relabel::SPEC,
    &crate::output::elasticsearch::config::SPEC,
    &crate::output::forward::config::SPEC,
];

/// Sections several plugins use: documented once, linked from the plugins.
pub static SHARED_SECTIONS: &[&SectionSpec] = &[
    &crate::buffer::config::SECTION,
    &crate::output::format::SECTION,
];

const ONE_LOG_LEVEL: &str =
    "logship has one log level for all plugins (`<system> log_level`, `LOG_LEVEL`, `RUST_LOG`)";

const TYPE: ParamSpec = ParamSpec::string("@type")
    .required()
    .doc("the plugin (`type` is Fluentd v0.12's spelling)");
const V012_TYPE: ParamSpec = ParamSpec::string("type").doc("Fluentd v0.12's spelling of `@type`");
const ID: ParamSpec = ParamSpec::string("@id")
    .doc("the plugin's id in metrics and logs; generated when unset (see docs/metrics.md)");
const LOG_LEVEL: ParamSpec = ParamSpec::string("@log_level").no_effect(ONE_LOG_LEVEL);

/// Parameters every `<source>` accepts.
pub static SOURCE_COMMON: &[ParamSpec] = &[
    TYPE,
    V012_TYPE,
    ID,
    ParamSpec::string("@label")
        .doc("send the events to this `<label>` instead of the top-level directives"),
    LOG_LEVEL,
];

/// Parameters every `<filter>` accepts.
pub static FILTER_COMMON: &[ParamSpec] = &[
    TYPE,
    V012_TYPE,
    ID,
    ParamSpec::string("@label")
        .no_effect("a filter passes events on; it does not send them to a label"),
    LOG_LEVEL,
];

/// Parameters every `<match>` and `<store>` accepts.
pub static OUTPUT_COMMON: &[ParamSpec] = &[
    TYPE,
    V012_TYPE,
    ID,
    ParamSpec::string("@label").no_effect("only `@type relabel` sends events to a label"),
    LOG_LEVEL,
];

fn pick<P: ?Sized>(
    el: &Element,
    diag: &mut Diagnostics,
    kind: &str,
    specs: &'static [&'static PluginSpec<P>],
) -> Option<&'static PluginSpec<P>> {
    let supported = || {
        specs
            .iter()
            .map(|s| s.type_name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(p) = el.param("@type").or_else(|| el.param("type")) else {
        diag.error(
            &el.loc,
            format!("<{}> has no @type; supported: {}", el.name, supported()),
        );
        return None;
    };
    let found = specs.iter().find(|s| s.type_name == p.value).copied();
    if found.is_none() {
        diag.error(
            &p.loc,
            format!(
                "unknown {kind} @type '{}' in <{}>; supported: {}",
                p.value,
                el.name,
                supported()
            ),
        );
    }
    found
}

fn parse_plugin<P: ?Sized>(
    el: &Element,
    diag: &mut Diagnostics,
    kind: &str,
    specs: &'static [&'static PluginSpec<P>],
    common: &'static [ParamSpec],
) -> Option<Arc<P>> {
    let spec = pick(el, diag, kind, specs)?;
    let what = match el.name.as_str() {
        "source" | "store" => format!("<{}> (@type {})", el.name, spec.type_name),
        _ => format!("<{} {}> (@type {})", el.name, el.arg, spec.type_name),
    };
    // Fluentd v0.12's buffer parameters at this level belong in <buffer> (see `compat`).
    let translated = if spec.sections.iter().any(|s| s.name == "buffer") {
        compat::move_buffer_params(el, &what, diag)
    } else {
        None
    };
    let el = translated.as_ref().unwrap_or(el);
    let mut s = Section::new(el, what, vec![spec.params, common], spec.sections, diag);
    // Read by the config layer itself (directive ids, source labels).
    for name in ["@type", "type", "@id", "@label"] {
        s.given(name);
    }
    let plugin = (spec.parse)(&mut s);
    s.finish();
    Some(plugin)
}

/// Reads a `<source>`.
pub fn parse_source(el: &Element, diag: &mut Diagnostics) -> Option<Arc<dyn SourcePlugin>> {
    parse_plugin(el, diag, "input", SOURCES, SOURCE_COMMON)
}

/// Reads a `<filter>`.
pub fn parse_filter(el: &Element, diag: &mut Diagnostics) -> Option<Arc<dyn FilterPlugin>> {
    parse_plugin(el, diag, "filter", FILTERS, FILTER_COMMON)
}

/// Reads a `<match>` or a `<store>`.
pub fn parse_output(el: &Element, diag: &mut Diagnostics) -> Option<Arc<dyn OutputPlugin>> {
    parse_plugin(el, diag, "output", OUTPUTS, OUTPUT_COMMON)
}

fn markdown_plugins<P: ?Sized>(
    out: &mut String,
    directive: &str,
    common: &'static [ParamSpec],
    specs: &[&PluginSpec<P>],
) {
    let _ = writeln!(
        out,
        "\n#### Every `{directive}`\n\nParameters every plugin below accepts as well.\n"
    );
    markdown_table(out, &[common]);
    for spec in specs {
        let _ = writeln!(
            out,
            "\n#### `{directive}` `@type {}`\n\n{}\n",
            spec.type_name, spec.summary
        );
        if spec.params.is_empty() {
            out.push_str("No parameters of its own.\n");
        } else {
            markdown_table(out, &[spec.params]);
        }
        for s in spec.sections {
            markdown_section(out, directive, s, SHARED_SECTIONS);
        }
    }
}

/// The parameter tables of `docs/logship.md`, rendered from the declarations.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("\n### Sources\n");
    markdown_plugins(&mut out, "<source>", SOURCE_COMMON, SOURCES);
    out.push_str("\n### Filters\n");
    markdown_plugins(&mut out, "<filter>", FILTER_COMMON, FILTERS);
    out.push_str("\n### Outputs\n\n`<store>` sections of `@type copy` take the same plugins and parameters as `<match>`.\n");
    markdown_plugins(&mut out, "<match>", OUTPUT_COMMON, OUTPUTS);
    out.push_str("\n### Sections\n");
    for s in SHARED_SECTIONS
        .iter()
        .copied()
        .chain([&super::system::SECTION])
    {
        markdown_section(&mut out, "", s, SHARED_SECTIONS);
    }
    out.push_str("\n### Fluentd v0.12 buffer parameters\n\nIn a `<match>` or `<store>` of an output with a `<buffer>` section, each of these is read as its `<buffer>` parameter, with a warning (see \"Compatibility parameters\" above).\n\n");
    compat::markdown(&mut out);
    out
}
