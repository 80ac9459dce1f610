//! `logship check-config -c FILE`: parse and check, print the effective pipeline and every
//! parameter given that has no effect in logship (exit 0), or every error as
//! `file:line: message` (exit 1). Warnings (`file:line: warning: message`, e.g. a Fluentd
//! v0.12 parameter read in its v1 form) go to stderr and do not change the exit code.

use std::io::Write;
use std::path::Path;

use crate::config::Config;

/// Runs the check, writing the report to `out` and errors/warnings to `err`; returns the exit code.
pub fn check_config(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match Config::from_file(path) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                let _ = writeln!(err, "{w}");
            }
            let _ = writeln!(out, "configuration OK: {}", path.display());
            let _ = write!(out, "{}", cfg.describe());
            let no_effect = cfg.no_effect_report();
            if !no_effect.is_empty() {
                let _ = writeln!(
                    out,
                    "parameters with no effect in logship (accepted for compatibility):"
                );
                for line in no_effect {
                    let _ = writeln!(out, "  {line}");
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
