//! Structured logging (12-factor, factor XI: logs are an event stream).
//!
//! Guarantee: every log record is a single JSON object on one line in the
//! bunyan format (`v`, `name`, `msg`, `level`, `time`, `hostname`, `pid`, plus
//! the fields of the enclosing spans, e.g. `request_id`, and `process_type`
//! (`web`, `worker`, `cron`, `migrate`, `seed`) on every line of the binary). The service writes
//! to stdout only and never to files; routing and storage of the stream is the
//! environment's job. The sink is generic so tests can capture the output.
//!
//! Spans log a `[NAME - START]` and a `[NAME - END]` line, except the per-request
//! `http_request` span ([`REQUEST_SPAN`]): a request logs exactly one line, the
//! `request completed` event, which already carries the span's fields (request id,
//! method, path, user agent, backend) plus status and latency. Three lines per
//! request cost ~10 % of the api's CPU under load and said nothing the one line
//! does not.

use tracing::span::{Attributes, Id};
use tracing::subscriber::set_global_default;
use tracing::{Event, Subscriber};
use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry};

/// Name of the per-request span (see [`crate::request_log`]); it logs no START/END lines.
pub const REQUEST_SPAN: &str = "http_request";

/// Forwards every event to the bunyan layer, and span open/close except for [`REQUEST_SPAN`].
/// Span fields reach events through [`JsonStorageLayer`], which still sees every span.
struct QuietRequestSpan<L>(L);

impl<S, L> Layer<S> for QuietRequestSpan<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.0.on_event(event, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != REQUEST_SPAN {
            self.0.on_new_span(attrs, id, ctx)
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let quiet = ctx
            .span(&id)
            .is_some_and(|s| s.metadata().name() == REQUEST_SPAN);
        if !quiet {
            self.0.on_close(id, ctx)
        }
    }
}

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
        .with(QuietRequestSpan(BunyanFormattingLayer::new(
            name.to_owned(),
            sink,
        )))
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
        .with(QuietRequestSpan(
            BunyanFormattingLayer::with_default_fields(name.to_owned(), sink, fields),
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
