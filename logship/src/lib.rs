//! logship: a log shipper that speaks the Fluentd Forward protocol.
//!
//! # Layout
//! - [`event`]: the event model (tag, time, msgpack record kept in wire form) and the
//!   [`event::EventSink`] trait through which inputs hand events to the pipeline.
//! - [`config`]: Fluentd-syntax config files → a syntax tree → typed plugin configs, each
//!   plugin declaring its parameters beside its code; the plugin registry.
//! - [`source`]: what a `<source>` plugin is (`forward`, `prometheus`, `monitor_agent`).
//! - [`pipeline`]: tag patterns, the router (filters, then the first matching `<match>`).
//! - [`filter`]: `parser`, `record_transformer`, `concat` (Docker partial lines).
//! - [`output`]: `stdout`, `file`, `null`, `copy`, `relabel`, `elasticsearch`, `forward`.
//! - [`buffer`]: the memory buffer of buffered outputs (`elasticsearch`).
//! - [`metrics`]: the monitoring endpoint (`/metrics`, `/healthz`, `/api/plugins.json`).
//! - [`msgpack_json`]: msgpack → JSON without a value tree; [`json_msgpack`]: JSON → msgpack.
//! - [`log_limit`]: rate-limited warnings for per-event and per-connection problems.
//! - [`memory_budget`]: the one memory budget of the process (receive buffers, decompressed
//!   payloads, events held by memory buffers).
//! - [`secret`]: passwords and keys that never reach a log line.
//! - [`private_key`]: PEM private keys for TLS, plain or encrypted with a passphrase.
//! - [`cli`]: the subcommands `run`, `cat`, `exec`, `check-config`.
//! - [`tail`]: `logship tail`, showing and following the documents in Elasticsearch.

pub mod buffer;
pub mod cli;
pub mod config;
pub mod event;
pub mod filter;
pub mod forward;
pub mod json_msgpack;
pub mod log_limit;
pub mod memory_budget;
pub mod metrics;
pub mod msgpack_json;
pub mod output;
pub mod pipeline;
pub mod private_key;
pub mod secret;
pub mod source;
pub mod tail;
