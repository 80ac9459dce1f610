//! Buffers of the buffered outputs (`<buffer>` in Fluentd's syntax): [`Buffer`] is what an
//! output uses, whatever the `@type`.
//!
//! - [`memory`]: `@type memory`, chunks in RAM (lost on `kill -9`);
//! - [`file`]: `@type file`, chunks in append-only files under `path`, a push resolves only
//!   once its bytes are written **and fsynced** (group commit);
//! - [`chunk_file`]: the on-disk format (header, framed records with length + xxh3 checksum);
//! - [`recovery`]: the start-up scan of a file buffer's directory (resume, cut torn tails, move
//!   corrupt files aside) and the lock that keeps two processes off one directory.
//!
//! # Life of a chunk
//! Pushed batches are appended to the **staged** chunk. It is **queued** when it reaches
//! `chunk_limit_size` bytes or `chunk_limit_records` events, after every push with
//! `flush_mode immediate`, once it is `flush_interval` old with `flush_mode interval`
//! (never by age with `lazy`), and at shutdown when `flush_at_shutdown` is true. A flush
//! worker [`take`](Buffer::take)s a queued chunk (it is then **in flight**), delivers it and
//! calls [`release`](Buffer::release): the chunk is **deleted** (its file unlinked). A chunk
//! counts against `total_limit_size` from push to release.
//!
//! # Full buffer (`overflow_action`)
//! - `block`: [`push`](Buffer::push) waits for space, so the input's `emit` waits, so the
//!   Forward server stops reading its sockets — backpressure over TCP;
//! - `drop_oldest_chunk`: the oldest queued (not in flight) chunk is discarded, counted in
//!   [`BufferStats::dropped_chunks`]/[`BufferStats::dropped_records`] and logged at WARN;
//! - `throw_exception`: the push fails with [`EmitError::BufferOverflow`]; the client gets
//!   no ack and resends.
//!
//! See `docs/durability.md` for the guarantees.

pub mod chunk_file;
pub mod file;
pub mod memory;
pub mod recovery;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::BufferConfig;
use crate::event::{EmitError, EventBatch};

pub use file::FileBuffer;
pub use memory::MemoryBuffer;

/// What to do when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowAction {
    Block,
    DropOldestChunk,
    ThrowException,
}

/// When the staged chunk is queued for delivery (besides being full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Once the staged chunk is `flush_interval` old.
    Interval,
    /// After every push (file buffer: after every group commit).
    Immediate,
    /// Only when full (or at shutdown with `flush_at_shutdown`).
    Lazy,
}

/// Default `total_limit_size` of a memory buffer (Fluentd's 512 MiB).
pub const MEMORY_TOTAL_LIMIT: u64 = 512 * 1024 * 1024;
/// Default `total_limit_size` of a file buffer: 1 GiB (Fluentd's 64 GiB would fill the disk
/// of a small host long before anybody noticed an outage).
pub const FILE_TOTAL_LIMIT: u64 = 1024 * 1024 * 1024;
/// Default `chunk_limit_size` of both buffers: 8 MiB (Fluentd's file default of 256 MiB would
/// make every delivery and every replay after a crash a very large read).
pub const CHUNK_LIMIT: u64 = 8 * 1024 * 1024;

/// Limits and timing of a buffer.
#[derive(Debug, Clone)]
pub struct BufferSettings {
    pub chunk_limit_size: u64,
    pub chunk_limit_records: u64,
    pub total_limit_size: u64,
    /// Used with [`FlushMode::Interval`]; `Duration::ZERO` behaves as `Immediate`.
    pub flush_interval: Duration,
    pub flush_mode: FlushMode,
    pub overflow_action: OverflowAction,
    /// Queue the staged chunk and deliver everything at shutdown. Default: true for memory
    /// (or it is lost), false for file (chunks stay on disk and are resumed at the next start,
    /// so shutdown is quick even when the destination is down).
    pub flush_at_shutdown: bool,
    /// `Some(dir)` for a file buffer.
    pub path: Option<PathBuf>,
}

impl Default for BufferSettings {
    fn default() -> Self {
        Self {
            chunk_limit_size: CHUNK_LIMIT,
            chunk_limit_records: u64::MAX,
            total_limit_size: MEMORY_TOTAL_LIMIT,
            flush_interval: Duration::from_secs(60),
            flush_mode: FlushMode::Interval,
            overflow_action: OverflowAction::ThrowException,
            flush_at_shutdown: true,
            path: None,
        }
    }
}

impl BufferSettings {
    /// From a `<buffer>` section (Fluentd's defaults for what is unset, except the limits
    /// documented on [`FILE_TOTAL_LIMIT`] and [`CHUNK_LIMIT`]).
    pub fn from_config(b: Option<&BufferConfig>) -> Self {
        let mut s = Self::default();
        if let Some(b) = b {
            if b.is_file {
                s.total_limit_size = FILE_TOTAL_LIMIT;
                s.flush_at_shutdown = false;
                s.path = b.file_path.as_ref().map(PathBuf::from);
            }
            if let Some(v) = b.chunk_limit_size {
                s.chunk_limit_size = v.max(1);
            }
            if let Some(v) = b.chunk_limit_records {
                s.chunk_limit_records = v.max(1);
            }
            if let Some(v) = b.total_limit_size {
                s.total_limit_size = v.max(1);
            }
            if let Some(v) = b.flush_at_shutdown {
                s.flush_at_shutdown = v;
            }
            s.flush_interval = b.flush_interval;
            s.flush_mode = match b.flush_mode.as_str() {
                "immediate" => FlushMode::Immediate,
                "lazy" => FlushMode::Lazy,
                "interval" => FlushMode::Interval,
                // "default": lazy when chunks are keyed by time, interval otherwise (Fluentd)
                _ if b.chunk_keys.iter().any(|k| k == "time") => FlushMode::Lazy,
                _ => FlushMode::Interval,
            };
            if s.flush_mode == FlushMode::Interval && s.flush_interval.is_zero() {
                s.flush_mode = FlushMode::Immediate;
            }
            s.overflow_action = match b.overflow_action.as_str() {
                "block" => OverflowAction::Block,
                "drop_oldest_chunk" => OverflowAction::DropOldestChunk,
                _ => OverflowAction::ThrowException,
            };
        }
        s
    }
}

/// A unit of delivery: batches in the order they were pushed.
#[derive(Debug, Default)]
pub struct Chunk {
    pub batches: Vec<EventBatch>,
    pub records: u64,
    /// Bytes this chunk counts against `total_limit_size`.
    pub bytes: u64,
    created: Option<Instant>,
    /// The file behind a file-buffer chunk (deleted on release).
    file: Option<file::ChunkRef>,
    /// A memory buffer's share of the process memory budget for this chunk's events, given
    /// back when the chunk is dropped (delivered, dropped or discarded at shutdown).
    memory: crate::memory_budget::Reservation,
}

impl Chunk {
    fn push(&mut self, batch: EventBatch, bytes: u64) {
        if self.created.is_none() {
            self.created = Some(Instant::now());
        }
        self.records += batch.len() as u64;
        self.bytes += bytes;
        self.batches.push(batch);
    }
}

/// Approximate memory of a batch: record bytes plus a per-event overhead.
pub fn batch_bytes(b: &EventBatch) -> u64 {
    b.events
        .iter()
        .map(|e| e.record.len() as u64 + 16)
        .sum::<u64>()
        + b.tag.len() as u64
}

/// Live counters of a buffer (monotonic; read them with [`Buffer::stats`]).
#[derive(Debug, Default)]
pub struct BufferCounters {
    pub pushed_records: AtomicU64,
    pub dropped_chunks: AtomicU64,
    pub dropped_records: AtomicU64,
    pub overflows: AtomicU64,
    pub fsyncs: AtomicU64,
    pub recovered_chunks: AtomicU64,
    pub recovered_records: AtomicU64,
    pub torn_bytes: AtomicU64,
    pub corrupt_files: AtomicU64,
}

/// A snapshot of a buffer's gauges and counters, for logs and a metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Gauge: chunks queued for delivery (not counting in flight or staged).
    pub queue_length: u64,
    /// Gauge: bytes of the queued chunks.
    pub queued_bytes: u64,
    /// Gauge: bytes held (staged, queued and in flight) — what `total_limit_size` limits.
    pub total_bytes: u64,
    /// Counter: events accepted by `push`.
    pub pushed_records: u64,
    /// Counter: chunks / events discarded by `overflow_action drop_oldest_chunk`.
    pub dropped_chunks: u64,
    pub dropped_records: u64,
    /// Counter: pushes that found the buffer full (whatever the action).
    pub overflows: u64,
    /// Counter (file): fsync calls of group commits.
    pub fsyncs: u64,
    /// Counter (file): chunks and events resumed from disk at start-up.
    pub recovered_chunks: u64,
    pub recovered_records: u64,
    /// Counter (file): bytes of torn tails cut off at start-up.
    pub torn_bytes: u64,
    /// Counter (file): files moved to `corrupt/`.
    pub corrupt_files: u64,
}

impl BufferCounters {
    fn snapshot(&self, queue_length: u64, queued_bytes: u64, total_bytes: u64) -> BufferStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BufferStats {
            queue_length,
            queued_bytes,
            total_bytes,
            pushed_records: g(&self.pushed_records),
            dropped_chunks: g(&self.dropped_chunks),
            dropped_records: g(&self.dropped_records),
            overflows: g(&self.overflows),
            fsyncs: g(&self.fsyncs),
            recovered_chunks: g(&self.recovered_chunks),
            recovered_records: g(&self.recovered_records),
            torn_bytes: g(&self.torn_bytes),
            corrupt_files: g(&self.corrupt_files),
        }
    }
}

/// Why a buffer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("<buffer @type file> needs a 'path'")]
    NoPath,
    #[error("buffer path {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("buffer path {0} is in use by another logship process (lock file {0}/buffer.lock is held); give each process and each output its own path")]
    Locked(PathBuf),
}

enum Inner {
    Memory(Box<MemoryBuffer>),
    File(FileBuffer),
}

/// The buffer of an output: memory or file, chosen by `<buffer @type>`.
pub struct Buffer {
    inner: Inner,
}

impl Buffer {
    /// The buffer for `<buffer>` section `cfg` (memory when absent). A file buffer creates its
    /// directory, takes its lock and resumes the chunks left there (see [`recovery`]).
    pub fn from_config(name: &str, cfg: Option<&BufferConfig>) -> Result<Buffer, BufferError> {
        Self::with_settings(name, BufferSettings::from_config(cfg))
    }

    /// The buffer for checked `settings` (`path` set = file buffer).
    pub fn with_settings(name: &str, settings: BufferSettings) -> Result<Buffer, BufferError> {
        let inner = if settings.path.is_some() {
            Inner::File(FileBuffer::open(name, settings)?)
        } else {
            Inner::Memory(Box::new(MemoryBuffer::new(name, settings)))
        };
        Ok(Buffer { inner })
    }

    pub fn settings(&self) -> &BufferSettings {
        match &self.inner {
            Inner::Memory(m) => m.settings(),
            Inner::File(f) => f.settings(),
        }
    }

    /// True for a file buffer: what is not delivered at shutdown stays on disk.
    pub fn is_persistent(&self) -> bool {
        matches!(self.inner, Inner::File(_))
    }

    /// How long an output should keep delivering at shutdown, given its own `grace`: none for
    /// a file buffer without `flush_at_shutdown` (what is not delivered stays on disk for the
    /// next start, so there is no reason to keep retrying), `grace` otherwise.
    pub fn shutdown_grace(&self, grace: Duration) -> Duration {
        if self.is_persistent() && !self.settings().flush_at_shutdown {
            Duration::ZERO
        } else {
            grace
        }
    }

    /// Appends `batch`; resolves once the buffer holds it (file: written and fsynced). That is
    /// when an input may ack it.
    pub async fn push(&self, batch: EventBatch) -> Result<(), EmitError> {
        match &self.inner {
            Inner::Memory(m) => m.push(batch).await,
            Inner::File(f) => f.push(batch).await,
        }
    }

    /// Waits for the next chunk to deliver. `None` once closed and (with
    /// `flush_at_shutdown`) drained.
    pub async fn take(&self) -> Option<Chunk> {
        match &self.inner {
            Inner::Memory(m) => m.take().await,
            Inner::File(f) => f.take().await,
        }
    }

    /// Marks `chunk` as done (delivered or dead-lettered): frees its bytes, deletes its file.
    /// A chunk taken and never released stays on disk (file buffer) and is resumed at the
    /// next start.
    pub fn release(&self, chunk: &Chunk) {
        match &self.inner {
            Inner::Memory(m) => m.release(chunk),
            Inner::File(f) => f.release(chunk),
        }
    }

    /// Stops accepting; [`take`](Self::take) then hands out what is left (with
    /// `flush_at_shutdown`) and returns `None`.
    pub fn close(&self) {
        match &self.inner {
            Inner::Memory(m) => m.close(),
            Inner::File(f) => f.close(),
        }
    }

    /// Waits until pending file work (deletes of released chunks) is done; call it after the
    /// flush workers stopped. Nothing to do for a memory buffer.
    pub async fn sync(&self) {
        if let Inner::File(f) = &self.inner {
            f.sync().await;
        }
    }

    /// Bytes held (staged, queued and in flight).
    pub fn total_bytes(&self) -> u64 {
        match &self.inner {
            Inner::Memory(m) => m.total_bytes(),
            Inner::File(f) => f.total_bytes(),
        }
    }

    /// Gauges and counters.
    pub fn stats(&self) -> BufferStats {
        match &self.inner {
            Inner::Memory(m) => m.stats(),
            Inner::File(f) => f.stats(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, OutputConfig};

    fn buffer_of(section: &str) -> BufferConfig {
        let text = format!(
            "<source>\n @type forward\n</source>\n<match **>\n @type elasticsearch\n host h\n {section}\n</match>\n"
        );
        let cfg = Config::from_str_at(&text, std::path::Path::new("t.conf")).unwrap();
        let m = cfg
            .root
            .directives
            .iter()
            .find_map(|d| match d {
                crate::config::Directive::Match(m) => Some(m),
                _ => None,
            })
            .unwrap();
        match &m.plugin {
            OutputConfig::Elasticsearch(e) => e.buffer.clone().unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn file_defaults_differ_from_memory_defaults() {
        let f = BufferSettings::from_config(Some(&buffer_of(
            "<buffer>\n @type file\n path /tmp/x\n</buffer>",
        )));
        assert_eq!(f.path.as_deref(), Some(std::path::Path::new("/tmp/x")));
        assert_eq!(f.total_limit_size, FILE_TOTAL_LIMIT);
        assert!(!f.flush_at_shutdown);
        assert_eq!(f.flush_mode, FlushMode::Interval);
        let m = BufferSettings::from_config(Some(&buffer_of(
            "<buffer tag, time>\n timekey 1h\n flush_at_shutdown false\n</buffer>",
        )));
        assert_eq!(m.path, None);
        assert_eq!(m.total_limit_size, MEMORY_TOTAL_LIMIT);
        assert!(!m.flush_at_shutdown);
        assert_eq!(m.flush_mode, FlushMode::Lazy);
        let i = BufferSettings::from_config(Some(&buffer_of(
            "<buffer>\n flush_mode immediate\n overflow_action block\n</buffer>",
        )));
        assert_eq!(i.flush_mode, FlushMode::Immediate);
        assert_eq!(i.overflow_action, OverflowAction::Block);
    }

    #[tokio::test]
    async fn only_a_file_buffer_without_flush_at_shutdown_skips_the_shutdown_grace() {
        let grace = Duration::from_secs(10);
        let memory = Buffer::from_config("m", None).unwrap();
        assert_eq!(memory.shutdown_grace(grace), grace);
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("keep");
        let file = Buffer::from_config(
            "f",
            Some(&buffer_of(&format!(
                "<buffer>\n @type file\n path {}\n</buffer>",
                keep.display()
            ))),
        )
        .unwrap();
        assert_eq!(file.shutdown_grace(grace), Duration::ZERO);
        let flush = dir.path().join("flush");
        let file_flushed = Buffer::from_config(
            "g",
            Some(&buffer_of(&format!(
                "<buffer>\n @type file\n path {}\n flush_at_shutdown true\n</buffer>",
                flush.display()
            ))),
        )
        .unwrap();
        assert_eq!(file_flushed.shutdown_grace(grace), grace);
    }
}
