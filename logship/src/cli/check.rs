//! `logship check-config -c FILE`: parse and check, print the effective pipeline (exit 0) or
//! every error as `file:line: message` (exit 1).

use std::io::Write;
use std::path::Path;

use crate::config::{Config, Directive, OutputConfig};

/// Runs the check, writing the report to `out` and errors/warnings to `err`; returns the exit code.
pub fn check_config(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match Config::from_file(path) {
        Ok(cfg) => {
            let _ = writeln!(out, "configuration OK: {}", path.display());
            let _ = write!(out, "{}", cfg.describe());
            for d in cfg
                .root
                .directives
                .iter()
                .chain(cfg.labels.values().flat_map(|l| l.directives.iter()))
            {
                if let Directive::Match(m) = d {
                    if not_runnable(&m.plugin) {
                        let what = if es_file_buffer(&m.plugin) {
                            "elasticsearch with <buffer> @type file".to_string()
                        } else {
                            m.plugin.type_name().to_string()
                        };
                        let _ = writeln!(
                            err,
                            "{}: warning: output @type {what} is parsed and checked but not implemented yet; `logship run` refuses this config",
                            m.loc,
                        );
                    }
                }
            }
            0
        }
        Err(errors) => {
            for e in &errors {
                let _ = writeln!(err, "{e}");
            }
            let _ = writeln!(
                err,
                "configuration has {} error(s): {}",
                errors.len(),
                path.display()
            );
            1
        }
    }
}

fn not_runnable(o: &OutputConfig) -> bool {
    match o {
        OutputConfig::Forward(f) => f.buffer.as_ref().is_some_and(|b| b.is_file),
        OutputConfig::Elasticsearch(_) => es_file_buffer(o),
        OutputConfig::Copy(v) => v.iter().any(|(_, o)| not_runnable(o)),
        _ => false,
    }
}

/// The Elasticsearch output has a memory buffer only.
fn es_file_buffer(o: &OutputConfig) -> bool {
    matches!(o, OutputConfig::Elasticsearch(e) if e.buffer.as_ref().is_some_and(|b| b.is_file))
}
