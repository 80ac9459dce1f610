//! Reading one section of the syntax tree by its declared parameters.
//!
//! A [`Section`] wraps an [`Element`] (a `<source>`, `<match>`, `<buffer>`, ...) with the
//! tables that declare what it accepts ([`ParamSpec`], [`SectionSpec`]). A plugin fills its
//! typed config from it — `s.get("port")`, `s.opt("tag")`, `s.child("buffer", ...)` — and
//! every value comes parsed by its declared type, or from its declared default.
//! [`Section::finish`] then deals with everything the plugin did not read:
//! - a name no table declares: an error with `file:line` and the supported names;
//! - a parameter or section declared *no effect in logship*: type-checked and recorded in
//!   [`Diagnostics::no_effect`] (named by `check-config` and at `run` start);
//! - one declared *not supported*: an error with the declared reason.
//!
//! A line whose value is embedded Ruby's `use_default` reads as not given (the declared
//! default; an error for a required parameter), one with `use_nil` as unset: `opt` gives
//! `None`, and `get` — a parameter that always has a value — reports an error. Neither is
//! reported as *no effect*: they give nothing.
//!
//! The declaration decides: a parameter declared *no effect* reads as not given, whatever the
//! plugin asks. In debug builds `finish` also asserts that the plugin read every parameter and
//! section it declares implemented (on a section without errors), so a table cannot claim what
//! the code does not do. Errors are collected, never returned early: a file reports all of
//! them.

use super::params::{find, DefaultValue, ParamSpec, SectionSpec, Status};
use super::syntax::ValueKind;
use super::values::{parse_value, FromValue};
use super::{ConfigError, Element, Loc, Param};
use crate::secret::Secret;

/// A parameter (or section) that was given but has no effect in logship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEffect {
    pub loc: Loc,
    /// The parameter name, or `<section>`.
    pub name: String,
    /// Where it was given, e.g. `<match **> (@type elasticsearch)`.
    pub section: String,
    pub reason: String,
}

/// Something a config does that works but should be written otherwise (e.g. a Fluentd v0.12
/// parameter that logship translates): `check-config` prints it, `logship run` logs it (WARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub loc: Loc,
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: warning: {}", self.loc, self.message)
    }
}

/// Everything found while reading a config: errors, warnings, and what has no effect.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
    pub no_effect: Vec<NoEffect>,
}

impl Diagnostics {
    pub fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.errors.push(ConfigError::at(loc, message));
    }

    pub fn warning(&mut self, loc: &Loc, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            loc: loc.clone(),
            message: message.into(),
        });
    }

    fn no_effect(&mut self, loc: &Loc, name: &str, section: &str, reason: &str) {
        self.no_effect.push(NoEffect {
            loc: loc.clone(),
            name: name.to_string(),
            section: section.to_string(),
            reason: reason.to_string(),
        });
    }
}

/// A plugin reads what it did not declare: a bug in the plugin, not in the config.
fn undeclared(kind: &str, name: &str, what: &str) -> ! {
    panic!("BUG: {kind} '{name}' is read but not declared for {what}")
}

/// One section being read (see the module docs).
pub struct Section<'a, 'd> {
    el: &'a Element,
    what: String,
    params: Vec<&'static [ParamSpec]>,
    sections: &'static [&'static SectionSpec],
    free_form: bool,
    /// Checked but not reported parameter by parameter (the contents of a no-effect section).
    quiet: bool,
    read: Vec<&'static str>,
    read_sections: Vec<&'static str>,
    errors_before: usize,
    diag: &'d mut Diagnostics,
}

fn list_or_none(v: &[&str]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

impl<'a, 'd> Section<'a, 'd> {
    /// A reader of `el` accepting the parameters of `params` (searched in order) and the
    /// sections of `sections`. `what` names it in messages, e.g. `<source> (@type forward)`.
    pub fn new(
        el: &'a Element,
        what: String,
        params: Vec<&'static [ParamSpec]>,
        sections: &'static [&'static SectionSpec],
        diag: &'d mut Diagnostics,
    ) -> Self {
        let errors_before = diag.errors.len();
        Self {
            el,
            what,
            params,
            sections,
            free_form: false,
            quiet: false,
            read: Vec::new(),
            read_sections: Vec::new(),
            errors_before,
            diag,
        }
    }

    /// A reader of `el` as declared by `spec`.
    pub fn of_spec(
        el: &'a Element,
        what: String,
        spec: &SectionSpec,
        diag: &'d mut Diagnostics,
    ) -> Self {
        let mut s = Self::new(
            el,
            what,
            vec![spec.overrides, spec.params],
            spec.sections,
            diag,
        );
        s.free_form = spec.free_form;
        s
    }

    pub fn element(&self) -> &'a Element {
        self.el
    }

    /// How messages name this section.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Renames the section in later messages (e.g. once its `@type` is known).
    pub fn set_what(&mut self, what: String) {
        self.what = what;
    }

    pub fn diagnostics(&mut self) -> &mut Diagnostics {
        self.diag
    }

    /// Records an error at `loc`.
    pub fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.diag.error(loc, message);
    }

    /// Records an error at the section's opening line.
    pub fn error_here(&mut self, message: impl Into<String>) {
        self.diag.error(&self.el.loc, message);
    }

    /// Records that `name`, given at `loc`, has no effect here for `reason` (for a parameter
    /// whose effect depends on the others, e.g. `path` of a memory buffer).
    pub fn note_no_effect(&mut self, loc: &Loc, name: &str, reason: &str) {
        if !self.quiet {
            self.diag.no_effect(loc, name, &self.what, reason);
        }
    }

    fn spec(&self, name: &str) -> &'static ParamSpec {
        find(&self.params, name).unwrap_or_else(|| undeclared("parameter", name, &self.what))
    }

    /// The parameter as written (the last line wins, as in Fluentd), without parsing. For
    /// checks that depend on whether something was given at all.
    pub fn given(&mut self, name: &'static str) -> Option<&'a Param> {
        let spec = self.spec(name);
        self.read.push(spec.name);
        self.el.param(name)
    }

    fn parse_default<T: FromValue>(&self, spec: &ParamSpec) -> Option<T> {
        match spec.default {
            DefaultValue::Value(v) => {
                let parsed = parse_value(spec.ty, v).and_then(T::from_value);
                if let Err(e) = &parsed {
                    debug_assert!(false, "BUG: declared default of '{}': {e}", spec.name);
                }
                parsed.ok()
            }
            _ => None,
        }
    }

    /// The value given, else the declared default; `None` when neither (or when the value
    /// was invalid: the error is recorded), and for `use_nil`. A parameter declared other than
    /// implemented here (e.g. a shared section's parameter one plugin overrides as *no effect*)
    /// reads as not given: the declaration decides, and [`Section::finish`] reports it.
    pub fn opt<T: FromValue>(&mut self, name: &'static str) -> Option<T> {
        let spec = self.spec(name);
        debug_assert!(
            !spec.secret,
            "BUG: '{name}' is declared secret; read it with secret()"
        );
        self.value(spec)
    }

    /// A parameter declared secret, as a [`Secret`]: the value given, else its default. A
    /// missing required one is an error (and reads as `None`).
    pub fn secret(&mut self, name: &'static str) -> Option<Secret> {
        let spec = self.spec(name);
        debug_assert!(
            spec.secret,
            "BUG: '{name}' is not declared secret; read it with opt()"
        );
        if self.missing_required(spec) {
            return None;
        }
        self.value::<String>(spec).map(Secret::new)
    }

    fn value<T: FromValue>(&mut self, spec: &'static ParamSpec) -> Option<T> {
        let name = spec.name;
        if spec.status != Status::Implemented {
            return self.parse_default(spec);
        }
        self.read.push(spec.name);
        let Some(p) = self.el.entry(name) else {
            return self.parse_default(spec);
        };
        match p.kind {
            ValueKind::Given => {}
            ValueKind::UseDefault => {
                if spec.default == DefaultValue::Required {
                    let msg = format!(
                        "parameter '{name}' in {} has no default: use_default cannot stand for it",
                        self.what
                    );
                    self.diag.error(&p.loc, msg);
                }
                return self.parse_default(spec);
            }
            ValueKind::UseNil => {
                if spec.default == DefaultValue::Required {
                    let msg = format!(
                        "parameter '{name}' in {} is required: use_nil cannot unset it",
                        self.what
                    );
                    self.diag.error(&p.loc, msg);
                }
                return None;
            }
        }
        match parse_value(spec.ty, &p.value).and_then(T::from_value) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = format!("parameter '{name}' in {}: {e}", self.what);
                self.diag.error(&p.loc, msg);
                self.parse_default(spec)
            }
        }
    }

    /// The value given, else the declared default. A missing required parameter is an error,
    /// and so is `use_nil`: this parameter always has a value (both read as `T::default()`).
    pub fn get<T: FromValue + Default>(&mut self, name: &'static str) -> T {
        let spec = self.spec(name);
        debug_assert!(
            matches!(
                spec.default,
                DefaultValue::Value(_) | DefaultValue::Required
            ),
            "BUG: '{name}' has no declared default; read it with opt()"
        );
        if self.missing_required(spec) {
            return T::default();
        }
        if let (Some(p), DefaultValue::Value(d)) = (self.el.entry(name), spec.default) {
            if p.kind == ValueKind::UseNil && spec.status == Status::Implemented {
                self.read.push(spec.name);
                let msg = format!(
                    "parameter '{name}' in {} always has a value: use_nil cannot unset it (use_default gives its default, {d:?})",
                    self.what
                );
                self.diag.error(&p.loc, msg);
                return T::default();
            }
        }
        self.opt(name).unwrap_or_default()
    }

    /// Whether `spec` is required and not given (recorded as an error).
    fn missing_required(&mut self, spec: &'static ParamSpec) -> bool {
        // A `use_default` / `use_nil` line is given: reading it reports what it asks for.
        if spec.default != DefaultValue::Required || self.el.entry(spec.name).is_some() {
            return false;
        }
        self.read.push(spec.name);
        let msg = format!(
            "missing required parameter '{}' in {}",
            spec.name, self.what
        );
        self.diag.error(&self.el.loc, msg);
        true
    }

    fn section_spec(&self, name: &str) -> &'static SectionSpec {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .copied()
            .unwrap_or_else(|| undeclared("section", name, &self.what))
    }

    /// Every `<name>` child, in order.
    pub fn elements(&mut self, name: &'static str) -> Vec<&'a Element> {
        let spec = self.section_spec(name);
        self.read_sections.push(spec.name);
        self.el.children.iter().filter(|c| c.name == name).collect()
    }

    /// The `<name>` child if there is one; a second one is an error.
    pub fn element_once(&mut self, name: &'static str) -> Option<&'a Element> {
        let v = self.elements(name);
        if let Some(second) = v.get(1) {
            let msg = format!("only one <{name}> section is allowed in {}", self.what);
            self.diag.error(&second.loc, msg);
        }
        v.first().copied()
    }

    /// A reader of the child `el` (one of this section's declared sections).
    pub fn open(&mut self, el: &'a Element) -> Section<'a, '_> {
        let spec = self.section_spec(&el.name);
        self.read_sections.push(spec.name);
        let what = if el.arg.trim().is_empty() {
            format!("<{}>", el.name)
        } else {
            format!("<{} {}>", el.name, el.arg.trim())
        };
        let mut s = Section::of_spec(el, what, spec, self.diag);
        s.quiet = self.quiet;
        s
    }

    /// Reads the `<name>` child (at most one) with `read`, then finishes it.
    pub fn child<T>(
        &mut self,
        name: &'static str,
        read: impl FnOnce(&mut Section<'a, '_>) -> T,
    ) -> Option<T> {
        let el = self.element_once(name)?;
        let mut s = self.open(el);
        let v = read(&mut s);
        s.finish();
        Some(v)
    }

    /// Reads every `<name>` child with `read`, finishing each.
    pub fn children<T>(
        &mut self,
        name: &'static str,
        mut read: impl FnMut(&mut Section<'a, '_>) -> T,
    ) -> Vec<T> {
        let els = self.elements(name);
        els.into_iter()
            .map(|el| {
                let mut s = self.open(el);
                let v = read(&mut s);
                s.finish();
                v
            })
            .collect()
    }

    /// Reports what the plugin did not read (see the module docs).
    pub fn finish(self) {
        let mut noted: Vec<&str> = Vec::new();
        // The lines of a free-form section are data, not parameters.
        let params = if self.free_form {
            &[][..]
        } else {
            &self.el.params[..]
        };
        for p in params {
            let Some(spec) = find(&self.params, &p.key) else {
                let mut known: Vec<&str> = self
                    .params
                    .iter()
                    .flat_map(|t| t.iter())
                    .filter(|s| !matches!(s.status, Status::NotSupported(_)))
                    .map(|s| s.name)
                    .collect();
                known.sort_unstable();
                known.dedup();
                self.diag.error(
                    &p.loc,
                    format!(
                        "unknown parameter '{}' in {}; supported: {}",
                        p.key,
                        self.what,
                        list_or_none(&known)
                    ),
                );
                continue;
            };
            // use_default / use_nil give nothing: nothing to check or to report.
            if p.kind != ValueKind::Given {
                continue;
            }
            if !self.read.contains(&spec.name) {
                if let Err(e) = parse_value(spec.ty, &p.value) {
                    self.diag.error(
                        &p.loc,
                        format!("parameter '{}' in {}: {e}", p.key, self.what),
                    );
                }
            }
            match spec.status {
                Status::Implemented => {}
                Status::NoEffect(reason) => {
                    if !self.quiet && !noted.contains(&spec.name) {
                        noted.push(spec.name);
                        self.diag.no_effect(&p.loc, &p.key, &self.what, reason);
                    }
                }
                Status::NotSupported(reason) => self.diag.error(
                    &p.loc,
                    format!(
                        "parameter '{}' in {} is not supported: {reason}",
                        p.key, self.what
                    ),
                ),
            }
        }
        for c in &self.el.children {
            let Some(spec) = self.sections.iter().find(|s| s.name == c.name) else {
                let known: Vec<String> = self
                    .sections
                    .iter()
                    .filter(|s| !matches!(s.status, Status::NotSupported(_)))
                    .map(|s| format!("<{}>", s.name))
                    .collect();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                self.diag.error(
                    &c.loc,
                    format!(
                        "unknown section <{}> in {}; supported sections: {}",
                        c.name,
                        self.what,
                        list_or_none(&known)
                    ),
                );
                continue;
            };
            if self.read_sections.contains(&spec.name) {
                continue;
            }
            match spec.status {
                Status::Implemented => {}
                Status::NoEffect(reason) => {
                    if !self.quiet && !noted.contains(&spec.name) {
                        noted.push(spec.name);
                        let name = format!("<{}>", c.name);
                        self.diag.no_effect(&c.loc, &name, &self.what, reason);
                    }
                    // Its contents are still checked against its declaration.
                    let mut inner = Section::of_spec(c, format!("<{}>", c.name), spec, self.diag);
                    inner.quiet = true;
                    inner.finish();
                }
                Status::NotSupported(reason) => self.diag.error(
                    &c.loc,
                    format!(
                        "section <{}> in {} is not supported: {reason}",
                        c.name, self.what
                    ),
                ),
            }
        }
        #[cfg(debug_assertions)]
        if !self.quiet && !self.free_form && self.diag.errors.len() == self.errors_before {
            self.assert_everything_implemented_was_read();
        }
    }

    /// The debug check of the module docs.
    #[cfg(debug_assertions)]
    fn assert_everything_implemented_was_read(&self) {
        for p in self.params.iter().flat_map(|t| t.iter()) {
            // A shadowed declaration (overridden) is not this section's.
            if find(&self.params, p.name).is_some_and(|first| !std::ptr::eq(first, p)) {
                continue;
            }
            assert!(
                p.status != Status::Implemented || self.read.contains(&p.name),
                "BUG: parameter '{}' is declared implemented for {}, but the plugin never reads it",
                p.name,
                self.what
            );
        }
        for s in self.sections {
            assert!(
                s.status != Status::Implemented || self.read_sections.contains(&s.name),
                "BUG: section <{}> is declared implemented for {}, but the plugin never reads it",
                s.name,
                self.what
            );
        }
    }
}
