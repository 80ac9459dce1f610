//! Structured logging (12-factor, factor XI: logs are an event stream).
//!
//! Guarantee: every log record is a single JSON object on one line in the
//! bunyan format (`v`, `name`, `msg`, `level`, `time`, `hostname`, `pid`, plus
//! the fields of the enclosing spans, e.g. `request_id`, and `process_type`
//! (`web`, `worker`, `cron`, `migrate`, `seed`) on every line of the binary). The service writes
//! to stdout only and never to files; routing and storage of the stream is the
//! environment's job. The sink is generic so tests can capture the output.
//!
//! Spans log a `[NAME - START]` and a `[NAME - END]` line. Requests have no
//! span: their one `request completed` line is written by
//! [`crate::request_log`], and records logged while serving a request add
//! its fields from [`crate::request_log::current`].

use tracing::subscriber::set_global_default;
use tracing::Subscriber;
use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

/// Build a subscriber writing bunyan JSON lines to `sink`.
///
/// `filter` is an `EnvFilter` directive such as `info` or `api=debug,sqlx=warn`;
/// an unparsable directive falls back to `info`.
pub fn get_subscriber<Sink>(name: &str, filter: &str, sink: Sink) -> impl Subscriber + Send + Sync
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    Registry::default()
        .with(env_filter)
        .with(JsonStorageLayer)
        .with(BunyanFormattingLayer::new(name.to_owned(), sink))
}

/// Like [`get_subscriber`], with a `process_type` field (`web`, `worker`,
/// `cron`, `migrate`, `seed`, ...) on every record (a bunyan default field).
pub fn get_process_subscriber<Sink>(
    name: &str,
    process_type: &str,
    filter: &str,
    sink: Sink,
) -> impl Subscriber + Send + Sync
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fields = std::collections::HashMap::from([(
        "process_type".to_owned(),
        serde_json::Value::from(process_type),
    )]);
    Registry::default()
        .with(env_filter)
        .with(JsonStorageLayer)
        .with(BunyanFormattingLayer::with_default_fields(
            name.to_owned(),
            sink,
            fields,
        ))
}

/// Install `subscriber` as the global default. Call once per process.
///
/// Returns an error (instead of panicking) if a global subscriber is already set.
pub fn init_subscriber(
    subscriber: impl Subscriber + Send + Sync,
) -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
    set_global_default(subscriber)
}
