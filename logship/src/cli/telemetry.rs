//! logship's own logs: one JSON object per line on **stderr** (stdout belongs to the stdout
//! output and to `exec`'s echo). The level comes from `RUST_LOG` (full directive syntax), else
//! `LOG_LEVEL` (`error`/`warn`/`info`/`debug`/`trace`), else `info`.

use tracing_subscriber::EnvFilter;

/// The filter `RUST_LOG` / `LOG_LEVEL` ask for.
pub fn env_filter(default: &str) -> EnvFilter {
    if let Ok(v) = std::env::var("RUST_LOG") {
        if let Ok(f) = EnvFilter::try_new(&v) {
            return f;
        }
    }
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| default.to_string());
    EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new(default))
}

/// Installs the JSON subscriber writing to stderr (once; later calls are no-ops).
///
/// A line that cannot be written (stderr is a pipe whose reader is gone) is dropped:
/// tracing-subscriber would otherwise report it with `eprint!`, which panics on that same
/// broken stderr — inside whatever task logged, e.g. the one waiting for SIGTERM, so that
/// logship would never shut down.
pub fn init(default_level: &str) {
    let _ = tracing_subscriber::fmt()
        .log_internal_errors(false)
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(env_filter(default_level))
        .with_writer(std::io::stderr)
        .try_init();
}
