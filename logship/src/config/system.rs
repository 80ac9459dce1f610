//! `<system>`: process-wide settings.

use super::params::{ParamSpec, SectionSpec};
use super::section::Section;

/// `<system>`.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// The default level of logship's own logs (`LOG_LEVEL` / `RUST_LOG` win).
    pub log_level: Option<String>,
    pub workers: u32,
    /// The process memory budget in bytes ([`crate::memory_budget`]).
    pub memory_budget: u64,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            log_level: None,
            workers: 1,
            memory_budget: crate::memory_budget::DEFAULT_MEMORY_BUDGET,
        }
    }
}

const SINGLE_PROCESS: &str = "logship is one process with one worker";

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string("log_level")
        .doc("default level of logship's own logs: `trace`, `debug`, `info`, `warn`, `error` (`LOG_LEVEL` and `RUST_LOG` win)"),
    ParamSpec::integer("workers").default("1").doc("must be 1: logship runs one worker"),
    ParamSpec::size("memory_budget").default("256m").doc("logship's own: the memory the whole process may hold for events — receive buffers, decompressed payloads, memory buffers; what does not fit waits (TCP backpressure)"),
    ParamSpec::string("process_name").no_effect("the process is always named logship"),
    ParamSpec::bool("suppress_repeated_stacktrace").no_effect("logship logs no stack traces"),
    ParamSpec::time("ignore_repeated_log_interval")
        .no_effect("repeated per-event warnings are always rate-limited (burst, then a count of what was suppressed)"),
    ParamSpec::time("ignore_same_log_interval")
        .no_effect("repeated per-event warnings are always rate-limited (burst, then a count of what was suppressed)"),
    ParamSpec::bool("without_source").no_effect(super::params::NOT_IMPLEMENTED),
    ParamSpec::string("rpc_endpoint").no_effect("logship has no RPC endpoint; use SIGTERM and the monitor sources"),
    ParamSpec::bool("enable_get_dump").no_effect("logship has no RPC endpoint"),
    ParamSpec::bool("suppress_config_dump").no_effect("logship does not log its config (`check-config` prints it)"),
    ParamSpec::bool("log_event_verbose").no_effect("logship does not emit its own logs as events"),
    ParamSpec::string("root_dir").no_effect("each file buffer has its own `path`"),
    ParamSpec::time("emit_error_log_interval")
        .no_effect("repeated per-event warnings are always rate-limited"),
    ParamSpec::string("dir_permission").no_effect("directories are created with the process umask"),
    ParamSpec::string("file_permission").no_effect("files are created with the process umask"),
    ParamSpec::bool("strict_config_value").no_effect("values are always checked strictly"),
    ParamSpec::bool("enable_msgpack_time_support").no_effect("EventTime is always decoded"),
    ParamSpec::bool("disable_shared_socket").no_effect(SINGLE_PROCESS),
    ParamSpec::bool("enable_input_metrics").no_effect("input metrics are always counted (see docs/metrics.md)"),
    ParamSpec::bool("enable_size_metrics").no_effect("sizes are always counted (see docs/metrics.md)"),
];

static LOG: SectionSpec = SectionSpec::new("log", &[])
    .free_form()
    .no_effect("logship's own logs are always JSON lines on stderr");

/// `<system>`'s declaration.
pub static SECTION: SectionSpec = SectionSpec::new("system", PARAMS)
    .sections(&[&LOG])
    .doc("Process-wide settings.");

/// Reads `<system>`.
pub fn parse(s: &mut Section<'_, '_>) -> SystemConfig {
    let cfg = SystemConfig {
        log_level: s.opt("log_level"),
        workers: s.get("workers"),
        memory_budget: s.get("memory_budget"),
    };
    if cfg.memory_budget == 0 {
        let loc = s
            .given("memory_budget")
            .map(|p| p.loc.clone())
            .unwrap_or_else(|| s.element().loc.clone());
        s.error(&loc, "memory_budget must be larger than 0");
    }
    if cfg.workers != 1 {
        let loc = s.element().loc.clone();
        s.error(
            &loc,
            format!("workers {}: logship runs exactly one worker", cfg.workers),
        );
    }
    cfg
}
