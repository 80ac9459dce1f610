//! The event model shared by every part of logship.
//!
//! An event is what Fluentd calls an event: a **tag** (a dot-separated routing key such as
//! `docker.api`), a **time** with nanosecond precision, and a **record** (a map of fields).
//!
//! Events stay in wire form: the record is the msgpack bytes of the map exactly as a client
//! sent them (a cheap `Bytes` slice of the receive buffer, no copy). The router needs only the
//! tag; only the filters that touch fields decode a record, and sinks transcode msgpack straight
//! into their own format. Decoding every record into a generic value tree would cost several
//! times the whole zero-copy path, so it is the exception, not the rule.
//!
//! Events travel in [`EventBatch`]es: one tag, many events — the unit a Forward client sends
//! (a `Forward`/`PackedForward` message, or one `Message`), and the unit a sink receives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

/// The time of an event: seconds since the Unix epoch plus nanoseconds, as Fluentd's
/// `EventTime` (msgpack ext type 0) carries it. Integer and float times from older clients
/// are converted into this form when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl EventTime {
    /// A time from seconds and nanoseconds.
    pub const fn new(secs: i64, nanos: u32) -> Self {
        Self { secs, nanos }
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }

    /// Splits a float time (seconds with a fraction) the way Fluentd does: the whole part
    /// becomes the seconds and the fraction becomes nanoseconds.
    pub fn from_f64(t: f64) -> Self {
        let secs = t.floor();
        let nanos = ((t - secs) * 1e9) as u32;
        Self {
            secs: secs as i64,
            nanos: nanos.min(999_999_999),
        }
    }
}

/// One event without its tag (the tag is shared by the [`EventBatch`] that holds it).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When the event happened, as the client said.
    pub time: EventTime,
    /// The record: the msgpack encoding of a map, exactly as received (or as a filter rewrote it).
    pub record: Bytes,
    /// Forward protocol v1.5 metadata: the msgpack encoding of the map a client sent in the
    /// entry's time slot (`[[time, {metadata}], record]`, Fluent Bit >= 5.0.5's default), exactly
    /// as received. `None` when the entry carried a plain time, which is not the same as an empty
    /// map (`Some` of `0x80`). Filters keep it; outputs decide whether to send or store it.
    pub metadata: Option<Bytes>,
}

impl Event {
    /// An event without metadata.
    pub fn new(time: EventTime, record: Bytes) -> Self {
        Self {
            time,
            record,
            metadata: None,
        }
    }

    /// An event carrying Forward v1.5 `metadata` (the msgpack bytes of a map).
    pub fn with_metadata(time: EventTime, record: Bytes, metadata: Option<Bytes>) -> Self {
        Self {
            time,
            record,
            metadata,
        }
    }
}

/// Events that share one tag, in the order they were received.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch {
    /// The routing key, e.g. `docker.api`.
    pub tag: Arc<str>,
    /// The events, oldest first as the client sent them.
    pub events: Vec<Event>,
}

impl EventBatch {
    /// A batch for `tag` holding `events`.
    pub fn new(tag: impl Into<Arc<str>>, events: Vec<Event>) -> Self {
        Self {
            tag: tag.into(),
            events,
        }
    }

    /// Number of events in the batch.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Why the pipeline could not take a batch. The input must not acknowledge it.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// An output's buffer is full and its `overflow_action` is `throw_exception`.
    #[error("buffer overflow in output {output}: {reason}")]
    BufferOverflow { output: String, reason: String },
    /// logship is shutting down and no longer takes events.
    #[error("the pipeline is shutting down")]
    ShuttingDown,
    /// Anything else an output reported.
    #[error("output {output} failed: {reason}")]
    Output { output: String, reason: String },
}

/// A boxed future, used where the trait must stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where inputs hand their events: the router (or a test double that records them).
///
/// `emit` resolves once every output that the batch routes to **holds** the events in its
/// buffer (memory: appended; file: written and synced). That is the moment a Forward input may
/// send `{"ack": chunk}` to its client. Slow outputs apply backpressure simply by resolving later;
/// inputs then stop reading their sockets, which pushes back on clients through TCP.
pub trait EventSink: Send + Sync + 'static {
    /// Hands `batch` to the pipeline.
    fn emit(&self, batch: EventBatch) -> BoxFuture<'_, Result<(), EmitError>>;
}
