//! Parameter declarations: what a plugin or a section accepts, declared once beside its code.
//!
//! Every plugin and every section declares its parameters in one table of [`ParamSpec`]s —
//! name, type, default and [`Status`] — the way Fluentd plugins declare
//! `config_param :name, :type, default: ...` at the top of their file. That table is the only
//! place a parameter exists:
//! - the reader ([`super::section::Section`]) parses a value by its declared type and, when the
//!   parameter is not given, parses the declared default, so a default cannot differ between
//!   the code and the docs;
//! - a name that no table declares is an error with `file:line` and the supported names;
//! - a parameter declared [`Status::NoEffect`] is accepted, its value still type-checked, and
//!   named by `check-config` and once at `run` start; one declared [`Status::NotSupported`] is
//!   an error with the reason;
//! - a parameter declared [`ParamSpec::secret`] (a password, a key: Fluentd's `secret: true`)
//!   is read only as a [`crate::secret::Secret`], which no log line, `Debug` output or
//!   `check-config` description shows;
//! - the parameter tables of `docs/logship.md` are rendered from the declarations
//!   ([`super::registry::markdown`]), and a test fails when the docs drift from them.

use std::fmt::Write as _;

/// The type of a parameter's value (Fluentd's `config_param` types), as parsed by
/// [`super::values::parse_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    /// `true`/`yes`, `false`/`no`; empty means true.
    Bool,
    Integer,
    /// 0–65535.
    Port,
    Float,
    /// Bytes with an optional k/m/g/t unit (`8m`).
    Size,
    /// Seconds with an optional s/m/h/d unit (`5s`).
    Time,
    /// A JSON array or comma-separated words.
    Array,
    /// One of these words.
    Enum(&'static [&'static str]),
}

impl ParamType {
    /// The type as the docs name it.
    pub fn doc_name(self) -> String {
        match self {
            ParamType::String => "string".into(),
            ParamType::Bool => "bool".into(),
            ParamType::Integer => "integer".into(),
            ParamType::Port => "port".into(),
            ParamType::Float => "float".into(),
            ParamType::Size => "size".into(),
            ParamType::Time => "time".into(),
            ParamType::Array => "array".into(),
            ParamType::Enum(v) => v.join(" \\| "),
        }
    }
}

/// What a parameter is when it is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// Unset: the plugin behaves as without it.
    Unset,
    /// Must be given.
    Required,
    /// This value, written as in a config file (parsed by the declared type).
    Value(&'static str),
    /// Computed when the config is read (e.g. the host name); the text says how.
    Computed(&'static str),
}

/// What logship does with a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It does what it does in Fluentd (or what its description says).
    Implemented,
    /// Accepted so that Fluentd configs load, but it changes nothing; the reason says why.
    /// Named by `check-config` and once at `run` start.
    NoEffect(&'static str),
    /// An error (with `file:line`) when given; the reason says why.
    NotSupported(&'static str),
}

/// The reason of parameters that a later change will implement.
pub const NOT_IMPLEMENTED: &str = "not implemented";

/// One parameter: name, type, default, status and a one-line description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: DefaultValue,
    pub status: Status,
    /// A password or key: read only as a [`crate::secret::Secret`] (see the module docs).
    pub secret: bool,
    pub doc: &'static str,
}

impl ParamSpec {
    const fn of(name: &'static str, ty: ParamType) -> Self {
        Self {
            name,
            ty,
            default: DefaultValue::Unset,
            status: Status::Implemented,
            secret: false,
            doc: "",
        }
    }
    pub const fn string(name: &'static str) -> Self {
        Self::of(name, ParamType::String)
    }
    pub const fn bool(name: &'static str) -> Self {
        Self::of(name, ParamType::Bool)
    }
    pub const fn integer(name: &'static str) -> Self {
        Self::of(name, ParamType::Integer)
    }
    pub const fn port(name: &'static str) -> Self {
        Self::of(name, ParamType::Port)
    }
    pub const fn float(name: &'static str) -> Self {
        Self::of(name, ParamType::Float)
    }
    pub const fn size(name: &'static str) -> Self {
        Self::of(name, ParamType::Size)
    }
    pub const fn time(name: &'static str) -> Self {
        Self::of(name, ParamType::Time)
    }
    pub const fn array(name: &'static str) -> Self {
        Self::of(name, ParamType::Array)
    }
    pub const fn choice(name: &'static str, words: &'static [&'static str]) -> Self {
        Self::of(name, ParamType::Enum(words))
    }
    /// The default, written as in a config file.
    pub const fn default(self, value: &'static str) -> Self {
        Self {
            default: DefaultValue::Value(value),
            ..self
        }
    }
    /// A default computed at load time, described by `how`.
    pub const fn computed(self, how: &'static str) -> Self {
        Self {
            default: DefaultValue::Computed(how),
            ..self
        }
    }
    pub const fn required(self) -> Self {
        Self {
            default: DefaultValue::Required,
            ..self
        }
    }
    pub const fn no_effect(self, reason: &'static str) -> Self {
        Self {
            status: Status::NoEffect(reason),
            ..self
        }
    }
    pub const fn not_supported(self, reason: &'static str) -> Self {
        Self {
            status: Status::NotSupported(reason),
            ..self
        }
    }
    /// A password or key (see the module docs).
    pub const fn secret(self) -> Self {
        Self {
            secret: true,
            ..self
        }
    }
    /// What the parameter does (for the docs).
    pub const fn doc(self, text: &'static str) -> Self {
        Self { doc: text, ..self }
    }

    /// The type as the docs name it, with `, secret` for a secret.
    fn type_text(&self) -> String {
        if self.secret {
            format!("{}, secret", self.ty.doc_name())
        } else {
            self.ty.doc_name()
        }
    }
}

/// A section inside a plugin (`<buffer>`, `<security>`, `<server>`, ...) and what it accepts.
#[derive(Debug, Clone, Copy)]
pub struct SectionSpec {
    pub name: &'static str,
    /// What the section's argument is (`<buffer ARG>`), for the docs; empty: none.
    pub arg: &'static str,
    pub params: &'static [ParamSpec],
    /// Searched before `params`: a plugin's own statuses for parameters of a shared section
    /// (e.g. a `<buffer>` parameter one output does not honour).
    pub overrides: &'static [ParamSpec],
    pub sections: &'static [&'static SectionSpec],
    /// May appear more than once.
    pub multiple: bool,
    /// Any parameter is accepted (the section's lines are data, e.g. `<record>`).
    pub free_form: bool,
    pub status: Status,
    pub doc: &'static str,
}

impl SectionSpec {
    pub const fn new(name: &'static str, params: &'static [ParamSpec]) -> Self {
        Self {
            name,
            arg: "",
            params,
            overrides: &[],
            sections: &[],
            multiple: false,
            free_form: false,
            status: Status::Implemented,
            doc: "",
        }
    }
    pub const fn arg(self, arg: &'static str) -> Self {
        Self { arg, ..self }
    }
    pub const fn sections(self, sections: &'static [&'static SectionSpec]) -> Self {
        Self { sections, ..self }
    }
    pub const fn multiple(self) -> Self {
        Self {
            multiple: true,
            ..self
        }
    }
    pub const fn free_form(self) -> Self {
        Self {
            free_form: true,
            ..self
        }
    }
    pub const fn overrides(self, overrides: &'static [ParamSpec]) -> Self {
        Self { overrides, ..self }
    }
    pub const fn no_effect(self, reason: &'static str) -> Self {
        Self {
            status: Status::NoEffect(reason),
            ..self
        }
    }
    pub const fn not_supported(self, reason: &'static str) -> Self {
        Self {
            status: Status::NotSupported(reason),
            ..self
        }
    }
    pub const fn doc(self, text: &'static str) -> Self {
        Self { doc: text, ..self }
    }
}

/// The first declaration of `name` in `tables`, searched in order.
pub fn find(tables: &[&'static [ParamSpec]], name: &str) -> Option<&'static ParamSpec> {
    tables
        .iter()
        .find_map(|t| t.iter().find(|p| p.name == name))
}

/// The status column of the docs.
pub fn status_text(s: Status) -> &'static str {
    match s {
        Status::Implemented => "implemented",
        Status::NoEffect(_) => "no effect",
        Status::NotSupported(_) => "error",
    }
}

/// The description column: what it does, or why it does nothing.
fn description(p: &ParamSpec) -> String {
    match (p.status, p.doc) {
        (Status::Implemented, doc) => doc.to_string(),
        (Status::NoEffect(why) | Status::NotSupported(why), "") => why.to_string(),
        (Status::NoEffect(why) | Status::NotSupported(why), doc) => format!("{why} ({doc})"),
    }
}

fn default_text(d: DefaultValue) -> String {
    match d {
        DefaultValue::Unset => "—".into(),
        DefaultValue::Required => "required".into(),
        DefaultValue::Value("") => "`\"\"`".into(),
        DefaultValue::Value(v) => format!("`{}`", v.replace('\n', "\\n").replace('\t', "\\t")),
        DefaultValue::Computed(how) => how.into(),
    }
}

/// `|`, escaped for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// A Markdown table of `params` (overrides shadow params of the same name).
pub fn markdown_table(out: &mut String, tables: &[&'static [ParamSpec]]) {
    out.push_str("| parameter | type | default | status | description |\n");
    out.push_str("|---|---|---|---|---|\n");
    let mut seen: Vec<&str> = Vec::new();
    for p in tables.iter().flat_map(|t| t.iter()) {
        if seen.contains(&p.name) {
            continue;
        }
        seen.push(p.name);
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            p.name,
            p.type_text(),
            default_text(p.default),
            status_text(p.status),
            cell(&description(p))
        );
    }
}

/// The Markdown of `section` (nested under `path`, e.g. `<security>` → `<user>`) and of its
/// subsections, each as a heading and a table. A section declared in `shared` (documented
/// once on its own) is only linked, with the plugin's overrides.
pub fn markdown_section(
    out: &mut String,
    path: &str,
    section: &SectionSpec,
    shared: &[&SectionSpec],
) {
    let tag = if section.arg.is_empty() {
        format!("<{}>", section.name)
    } else {
        format!("<{} {}>", section.name, section.arg)
    };
    let title = if path.is_empty() {
        tag
    } else {
        format!("{path} {tag}")
    };
    if path.is_empty() {
        // A section documented on its own; plugins link to `#NAME-section`.
        let _ = writeln!(out, "\n#### `<{}>` section\n", section.name);
        if !section.arg.is_empty() {
            let _ = writeln!(out, "Written `{title}`.\n");
        }
    } else {
        let _ = writeln!(out, "\n##### `{title}`\n");
    }
    // Shared sections have names of their own (`<buffer>`, `<format>`).
    let is_shared = !path.is_empty() && shared.iter().any(|s| s.name == section.name);
    let mut notes = Vec::new();
    if is_shared {
        notes.push(format!(
            "The [`<{}>` section](#{}-section) below.",
            section.name, section.name
        ));
    } else if !section.doc.is_empty() {
        notes.push(section.doc.to_string());
    }
    if section.multiple {
        notes.push("May be given several times.".into());
    }
    match section.status {
        Status::Implemented => {}
        Status::NoEffect(why) => notes.push(format!("The whole section has no effect: {why}.")),
        Status::NotSupported(why) => notes.push(format!("The whole section is an error: {why}.")),
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "{}\n", notes.join(" "));
    }
    if is_shared {
        if !section.overrides.is_empty() {
            out.push_str("Here these parameters differ:\n\n");
            markdown_table(out, &[section.overrides]);
        }
        return;
    }
    if section.free_form {
        if section.status == Status::Implemented {
            out.push_str("Any `key value` line (the section's lines are data).\n");
        }
    } else if section.params.is_empty() && section.overrides.is_empty() {
        out.push_str("No parameters.\n");
    } else {
        markdown_table(out, &[section.overrides, section.params]);
    }
    for s in section.sections {
        markdown_section(out, &title, s, shared);
    }
}
