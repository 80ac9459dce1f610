//! The subcommands of the `logship` binary; `main.rs` only parses arguments and calls these.
//!
//! - [`run`]: the daemon (sources → router → outputs) until SIGTERM/SIGINT;
//! - [`cat`]: JSON lines from stdin → Forward (like `fluent-cat`);
//! - [`exec`]: run a command and ship its stdout/stderr lines as Docker's fluentd driver would;
//! - [`check`]: validate a config and print the effective pipeline;
//! - [`fd_limit`]: `run` raises the open-file limit to the hard limit at start;
//! - [`telemetry`]: logship's own logs, JSON on stderr.

pub mod cat;
pub mod check;
pub mod exec;
pub mod fd_limit;
pub mod run;
pub mod telemetry;
