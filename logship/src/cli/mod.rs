//! The subcommands of the `logship` binary; `main.rs` only parses arguments and calls these.
//!
//! - [`run`]: the daemon (sources → router → outputs) until SIGTERM/SIGINT;
//! - [`cat`]: JSON lines from stdin → Forward (like `fluent-cat`);
//! - [`exec`]: run a command and ship its stdout/stderr lines as Docker's fluentd driver would;
//! - [`check`]: validate a config and print the effective pipeline;
//! - [`telemetry`]: logship's own logs, JSON on stderr.

pub mod cat;
pub mod check;
pub mod exec;
pub mod run;
pub mod telemetry;
