//! Fluentd v0.12's buffer parameters, written directly in a `<match>` or `<store>`, translated
//! into the `<buffer>` section the way Fluentd v1 does.
//!
//! Before Fluentd v0.14 a buffered output took its buffer settings as plain parameters
//! (`flush_interval 1s`, `buffer_type file`, `retry_limit 17`, ...). Fluentd v1 still accepts
//! them: `lib/fluent/plugin_helper/compat_parameters.rb` moves each into a `<buffer>` section
//! under its v1 name, and configs in the wild (the Fluentd docs' EFK guide among them) rely on
//! it. logship does the same for every output that declares a `<buffer>` section
//! ([`BUFFER_PARAMS`] is the map), before the output reads its parameters:
//!
//! - each such parameter becomes its v1 parameter in `<buffer>`, keeping its `file:line`, so
//!   the buffer's declaration type-checks it and reports it (a v1 parameter with no effect in
//!   logship is still named as such);
//! - each one given is named once by a warning (`check-config`, and WARN at `logship run`
//!   start) with its v1 form;
//! - without a `<buffer>` section, one is made (no chunk keys); with one, the parameters join
//!   it — where Fluentd v1 would ignore them, logship does not drop what was written — and the
//!   same parameter given both ways is an error;
//! - `buffer_queue_full_action exception` becomes `overflow_action throw_exception`, as in
//!   Fluentd.
//!
//! The time-sliced parameters of v0.12's `TimeSlicedOutput` (`time_slice_format`,
//! `time_slice_wait`) are not translated: logship's outputs have no time slices, so they stay
//! unknown parameters (an error with `file:line`).

use std::fmt::Write as _;

use super::section::Diagnostics;
use super::syntax::{Element, Param, ValueKind};

/// One v0.12 parameter and the `<buffer>` parameter it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompatParam {
    /// The v0.12 name, at the `<match>` / `<store>` level.
    pub old: &'static str,
    /// The v1 name inside `<buffer>`.
    pub new: &'static str,
}

const fn compat(old: &'static str, new: &'static str) -> CompatParam {
    CompatParam { old, new }
}

/// Every v0.12 buffer parameter logship translates (Fluentd's `BUFFER_PARAMS`, plus
/// `retry_wait`, which v0.12's buffered outputs took at the same level).
pub static BUFFER_PARAMS: &[CompatParam] = &[
    compat("buffer_type", "@type"),
    compat("buffer_path", "path"),
    compat("num_threads", "flush_thread_count"),
    compat("flush_interval", "flush_interval"),
    compat("try_flush_interval", "flush_thread_interval"),
    compat("queued_chunk_flush_interval", "flush_thread_burst_interval"),
    compat("disable_retry_limit", "retry_forever"),
    compat("retry_limit", "retry_max_times"),
    compat("retry_wait", "retry_wait"),
    compat("max_retry_wait", "retry_max_interval"),
    compat("buffer_chunk_limit", "chunk_limit_size"),
    compat("buffer_queue_limit", "queue_limit_length"),
    compat("buffer_queue_full_action", "overflow_action"),
    compat("flush_at_shutdown", "flush_at_shutdown"),
];

fn lookup(key: &str) -> Option<&'static CompatParam> {
    BUFFER_PARAMS.iter().find(|c| c.old == key)
}

/// The value a v0.12 parameter has in its v1 form.
fn translate_value(c: &CompatParam, value: &str) -> String {
    if c.old == "buffer_queue_full_action" && value.trim() == "exception" {
        "throw_exception".to_string()
    } else {
        value.to_string()
    }
}

/// `el` (a `<match>` or `<store>` of an output with a `<buffer>` section, named `what` in
/// messages) with its v0.12 buffer parameters moved into `<buffer>`; `None` when it has none.
/// Warnings and errors go to `diag` (see the module docs).
pub fn move_buffer_params(el: &Element, what: &str, diag: &mut Diagnostics) -> Option<Element> {
    if !el.params.iter().any(|p| lookup(&p.key).is_some()) {
        return None;
    }
    let mut out = el.clone();
    let (moved, kept): (Vec<Param>, Vec<Param>) = std::mem::take(&mut out.params)
        .into_iter()
        .partition(|p| lookup(&p.key).is_some());
    out.params = kept;
    let buffer = match out.children.iter().position(|c| c.name == "buffer") {
        Some(i) => &mut out.children[i],
        None => {
            out.children.push(Element {
                name: "buffer".into(),
                arg: String::new(),
                params: Vec::new(),
                children: Vec::new(),
                loc: moved[0].loc.clone(),
            });
            out.children.last_mut().expect("just pushed")
        }
    };
    let written = buffer.params.len();
    let mut warned: Vec<&str> = Vec::new();
    for p in moved {
        let c = lookup(&p.key).expect("partitioned by lookup");
        if let Some(v1) = buffer.params[..written]
            .iter()
            .rev()
            .find(|b| b.key == c.new)
        {
            diag.error(
                &p.loc,
                format!(
                    "'{}' in {what} is Fluentd v0.12's form of <buffer> '{}', which is also given at {}: keep the one in <buffer>",
                    c.old, c.new, v1.loc
                ),
            );
            continue;
        }
        let value = translate_value(c, &p.value);
        if !warned.contains(&c.old) {
            warned.push(c.old);
            let shown = match p.kind {
                ValueKind::Given => value.clone(),
                ValueKind::UseDefault => "(use_default)".into(),
                ValueKind::UseNil => "(use_nil)".into(),
            };
            diag.warning(
                &p.loc,
                format!(
                    "'{}' in {what} is Fluentd v0.12's form: read as '{} {shown}' in <buffer>; write it there (Fluentd v1)",
                    c.old, c.new
                ),
            );
        }
        buffer.params.push(Param {
            key: c.new.to_string(),
            value,
            loc: p.loc,
            kind: p.kind,
        });
    }
    Some(out)
}

/// The docs' table of [`BUFFER_PARAMS`].
pub fn markdown(out: &mut String) {
    out.push_str("| Fluentd v0.12 (`<match>` / `<store>` level) | Fluentd v1 (`<buffer>`) |\n");
    out.push_str("|---|---|\n");
    for c in BUFFER_PARAMS {
        let _ = write!(out, "| `{}` | `{}`", c.old, c.new);
        if c.old == "buffer_queue_full_action" {
            out.push_str(" (`exception` → `throw_exception`)");
        }
        out.push_str(" |\n");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::syntax::parse_str;

    fn element(text: &str) -> Element {
        let env = |_: &str| None;
        let root = parse_str(text, Path::new("t.conf"), &env).unwrap();
        root.children.into_iter().next().unwrap()
    }

    #[test]
    fn parameters_move_into_a_new_buffer_with_their_lines() {
        let el = element(
            "<match **>\n @type x\n flush_interval 1s\n buffer_type file\n buffer_path /b\n buffer_queue_full_action exception\n host h\n</match>\n",
        );
        let mut diag = Diagnostics::default();
        let out = move_buffer_params(&el, "<match **>", &mut diag).unwrap();
        assert!(diag.errors.is_empty());
        let keys: Vec<&str> = out.params.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["@type", "host"]);
        let b = &out.children[0];
        assert_eq!(
            (b.name.as_str(), b.arg.as_str(), b.loc.line),
            ("buffer", "", 3)
        );
        let moved: Vec<(&str, &str, usize)> = b
            .params
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str(), p.loc.line))
            .collect();
        assert_eq!(
            moved,
            [
                ("flush_interval", "1s", 3),
                ("@type", "file", 4),
                ("path", "/b", 5),
                ("overflow_action", "throw_exception", 6)
            ]
        );
        let w: Vec<String> = diag.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 4, "{w:#?}");
        assert_eq!(
            w[0],
            "t.conf:3: warning: 'flush_interval' in <match **> is Fluentd v0.12's form: read as 'flush_interval 1s' in <buffer>; write it there (Fluentd v1)"
        );
        assert!(
            w[3].contains("read as 'overflow_action throw_exception'"),
            "{}",
            w[3]
        );
    }

    #[test]
    fn parameters_join_a_written_buffer_and_a_clash_is_an_error() {
        let el = element(
            "<match **>\n retry_limit 5\n flush_interval 1s\n flush_interval 2s\n <buffer tag>\n  flush_interval 3s\n </buffer>\n</match>\n",
        );
        let mut diag = Diagnostics::default();
        let out = move_buffer_params(&el, "<match **>", &mut diag).unwrap();
        let b = &out.children[0];
        assert_eq!(b.arg, "tag");
        assert_eq!(b.param("retry_max_times").unwrap().loc.line, 2);
        assert_eq!(b.param("flush_interval").unwrap().value, "3s");
        let e: Vec<String> = diag.errors.iter().map(ToString::to_string).collect();
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!(
            e[0],
            "t.conf:3: 'flush_interval' in <match **> is Fluentd v0.12's form of <buffer> 'flush_interval', which is also given at t.conf:6: keep the one in <buffer>"
        );
        assert!(e[1].starts_with("t.conf:4: "), "{}", e[1]);
        // One warning per parameter name.
        assert_eq!(diag.warnings.len(), 1);
    }

    #[test]
    fn nothing_to_move_and_embedded_ruby_kinds() {
        let mut diag = Diagnostics::default();
        let el = element("<match **>\n host h\n</match>\n");
        assert!(move_buffer_params(&el, "<match **>", &mut diag).is_none());
        let el =
            element("<match **>\n flush_interval \"#{ENV['NOPE'] || use_default}\"\n</match>\n");
        let out = move_buffer_params(&el, "<match **>", &mut diag).unwrap();
        assert_eq!(out.children[0].params[0].kind, ValueKind::UseDefault);
        assert!(diag.warnings[0]
            .message
            .contains("'flush_interval (use_default)'"));
    }

    #[test]
    fn every_v1_name_is_a_declared_buffer_parameter() {
        for c in BUFFER_PARAMS {
            assert!(
                crate::buffer::config::SECTION
                    .params
                    .iter()
                    .any(|p| p.name == c.new),
                "{} -> {} is not a <buffer> parameter",
                c.old,
                c.new
            );
        }
    }
}
