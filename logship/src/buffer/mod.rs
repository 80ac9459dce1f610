//! Buffers of the buffered outputs (`<buffer>` in Fluentd's syntax): [`Buffer`] is what an
//! output uses, whatever the `@type`.
//!
//! - [`memory`]: `@type memory`, chunks in RAM (lost on `kill -9`);
//! - [`file`]: `@type file`, chunks in append-only files under `path`, a push resolves only
//!   once its bytes are written **and fsynced** (group commit);
//! - [`config`]: the `<buffer>` section's declared parameters, read into a [`BufferConfig`];
//! - [`chunk_file`]: the on-disk format (header, framed records with length + xxh3 checksum);
//! - [`recovery`]: the start-up scan of a file buffer's directory (resume, cut torn tails, move
//!   corrupt files aside) and the lock that keeps two processes off one directory.
//!
//! - [`chunk_key`]: `<buffer tag, time>`: one staged chunk per tag and/or time slice, and
//!   when a staged chunk is due (`flush_interval`, `timekey` + `timekey_wait`);
//! - [`retry`]: the `retry_*` parameters the outputs use between delivery attempts.
//!
//! # Life of a chunk
//! Pushed batches are appended to the **staged** chunk of their [`ChunkKey`] (one staged chunk
//! when there are no chunk keys). A staged chunk is **queued** when it reaches
//! `chunk_limit_size` bytes or `chunk_limit_records` events, after every push with
//! `flush_mode immediate`, when it is **due** ([`chunk_key`]: `flush_interval` old with
//! `flush_mode interval`, its time slice over plus `timekey_wait`), and at shutdown when
//! `flush_at_shutdown` is true. Due chunks are queued by the buffer's own timer (memory: a
//! timer thread; file: the writer thread), never by a flush worker, so a chunk is queued on
//! time even while every worker is busy retrying; but no more than `queued_chunks_limit_size`
//! chunks are queued by time (default: `flush_thread_count`, as Fluentd): while the queue is
//! that long, a due chunk stays staged and keeps growing, so an outage makes a few large
//! chunks instead of many small ones. A flush worker [`take`](Buffer::take)s a queued chunk
//! (it is then **in flight**), delivers it and calls [`release`](Buffer::release): the chunk
//! is **deleted** (its file unlinked). A chunk counts against `total_limit_size` from push to
//! release.
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
pub mod chunk_key;
pub mod config;
pub mod file;
pub mod memory;
pub mod recovery;
pub mod retry;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::event::{EmitError, EventBatch};
pub use config::BufferConfig;

pub use chunk_key::{ChunkKey, Chunking, SliceZone, TimeSlicing};
pub use file::FileBuffer;
pub use memory::MemoryBuffer;
pub use retry::RetryPolicy;

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
    /// Bytes of records (before compression) after which a chunk is full.
    pub chunk_limit_size: u64,
    pub chunk_limit_records: u64,
    /// Bytes held (file: on disk, after compression) beyond which `overflow_action` applies.
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
    /// Chunk keys: staged chunks per tag and/or time slice.
    pub chunking: Chunking,
    /// At most this many chunks are queued because they are due (full chunks always are).
    pub queued_chunks_limit: usize,
    /// File buffer: gzip every frame's payload on disk (`compress gzip`).
    pub compress_gzip: bool,
    /// File buffer: delete unreadable chunk files instead of keeping them in `corrupt/`, and
    /// keep no copy of a chunk whose damaged frames were skipped (`disable_chunk_backup`).
    pub disable_chunk_backup: bool,
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
            chunking: Chunking::default(),
            queued_chunks_limit: 1,
            compress_gzip: false,
            disable_chunk_backup: false,
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
                s.compress_gzip = b.compress_gzip;
            }
            if let Some(v) = b.chunk_limit_size {
                s.chunk_limit_size = v.max(1);
            }
            if let Some(v) = b.chunk_limit_records {
                s.chunk_limit_records = v.max(1);
            }
            match (b.total_limit_size, b.queue_limit_length) {
                (Some(v), _) => s.total_limit_size = v.max(1),
                // v0.12's buffer_queue_limit: as many full chunks (Fluentd's translation).
                (None, Some(n)) => s.total_limit_size = s.chunk_limit_size.saturating_mul(n.max(1)),
                (None, None) => {}
            }
            if let Some(v) = b.flush_at_shutdown {
                s.flush_at_shutdown = v;
            }
            let by_time = b.chunk_keys.iter().any(|k| k == "time");
            s.chunking = Chunking {
                by_tag: b.chunk_keys.iter().any(|k| k == "tag"),
                time: b.timekey.filter(|_| by_time).map(|k| TimeSlicing {
                    timekey: (k.as_secs() as i64).max(1),
                    wait: b.timekey_wait,
                    zone: if b.timekey_use_utc {
                        SliceZone::Fixed(0)
                    } else {
                        b.timekey_zone.map_or(SliceZone::Local, SliceZone::Fixed)
                    },
                }),
            };
            s.flush_interval = b.flush_interval;
            s.flush_mode = match b.flush_mode.as_str() {
                "immediate" => FlushMode::Immediate,
                "lazy" => FlushMode::Lazy,
                "interval" => FlushMode::Interval,
                // "default": lazy when chunks are keyed by time, interval otherwise (Fluentd)
                _ if by_time => FlushMode::Lazy,
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
            s.queued_chunks_limit = b
                .queued_chunks_limit_size
                .unwrap_or(u64::from(b.flush_thread_count))
                .clamp(1, usize::MAX as u64) as usize;
            s.disable_chunk_backup = b.disable_chunk_backup;
        }
        s
    }

    /// When a staged chunk of `key` created at `created` is due (see [`chunk_key`]).
    pub fn due_at(&self, key: &ChunkKey, created: Instant) -> Option<Instant> {
        let interval = (self.flush_mode == FlushMode::Interval).then_some(self.flush_interval);
        self.chunking.due_at(key, created, interval)
    }
}

/// A unit of delivery: batches in the order they were pushed.
#[derive(Debug, Default)]
pub struct Chunk {
    pub batches: Vec<EventBatch>,
    pub records: u64,
    /// Bytes this chunk counts against `total_limit_size`.
    pub bytes: u64,
    /// The file behind a file-buffer chunk (deleted on release).
    file: Option<file::ChunkRef>,
    /// A memory buffer's share of the process memory budget for this chunk's events, given
    /// back when the chunk is dropped (delivered, dropped or discarded at shutdown).
    memory: crate::memory_budget::Reservation,
}

impl Chunk {
    fn push(&mut self, batch: EventBatch, bytes: u64) {
        self.records += batch.len() as u64;
        self.bytes += bytes;
        self.batches.push(batch);
    }
}

/// Memory a batch holds in a memory buffer: per event its record and metadata bytes plus the
/// `Event` itself (time and two `Bytes` handles, 80 bytes), and the tag. What
/// `total_limit_size` limits, so that it bounds the process's memory (docs/durability.md).
pub fn batch_bytes(b: &EventBatch) -> u64 {
    let per_event = std::mem::size_of::<crate::event::Event>() as u64;
    b.events
        .iter()
        .map(|e| {
            e.record.len() as u64 + e.metadata.as_ref().map_or(0, |m| m.len() as u64) + per_event
        })
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
    pub skipped_bytes: AtomicU64,
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
    /// Counter (file): bytes of torn or damaged tails cut off at start-up.
    pub torn_bytes: u64,
    /// Counter (file): bytes of damaged frames skipped in the middle of chunks at start-up
    /// (the valid frames around them are kept).
    pub skipped_bytes: u64,
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
            skipped_bytes: g(&self.skipped_bytes),
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
    use crate::config::Config;
    use crate::output::elasticsearch::ElasticsearchConfig;

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
        m.config::<ElasticsearchConfig>()
            .unwrap()
            .buffer
            .clone()
            .unwrap()
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

    #[test]
    fn time_keys_zones_and_limits_from_the_config() {
        let s = BufferSettings::from_config(Some(&buffer_of(
            "<buffer tag, time>\n timekey 1d\n timekey_wait 30s\n timekey_zone +09:00\n flush_thread_count 3\n</buffer>",
        )));
        assert_eq!(
            s.chunking,
            Chunking {
                by_tag: true,
                time: Some(TimeSlicing {
                    timekey: 86400,
                    wait: Duration::from_secs(30),
                    zone: SliceZone::Fixed(9 * 3600),
                }),
            }
        );
        assert_eq!(s.flush_mode, FlushMode::Lazy);
        assert_eq!(s.queued_chunks_limit, 3, "flush_thread_count by default");
        let u = BufferSettings::from_config(Some(&buffer_of(
            "<buffer time>\n timekey 1h\n timekey_use_utc true\n timekey_zone +0900\n queued_chunks_limit_size 7\n</buffer>",
        )));
        let t = u.chunking.time.unwrap();
        assert_eq!(
            (t.zone, t.wait),
            (SliceZone::Fixed(0), Duration::from_secs(600))
        );
        assert_eq!(u.queued_chunks_limit, 7);
        let l =
            BufferSettings::from_config(Some(&buffer_of("<buffer time>\n timekey 1h\n</buffer>")));
        assert_eq!(l.chunking.time.unwrap().zone, SliceZone::Local);
        // v0.12's queue length: total = chunk × length, unless total_limit_size is given
        let q = BufferSettings::from_config(Some(&buffer_of(
            "<buffer>\n chunk_limit_size 1m\n queue_limit_length 32\n</buffer>",
        )));
        assert_eq!(q.total_limit_size, 32 << 20);
        let q2 = BufferSettings::from_config(Some(&buffer_of(
            "<buffer>\n chunk_limit_size 1m\n queue_limit_length 32\n total_limit_size 5m\n</buffer>",
        )));
        assert_eq!(q2.total_limit_size, 5 << 20);
        let f = BufferSettings::from_config(Some(&buffer_of(
            "<buffer>\n @type file\n path /tmp/x\n compress gzip\n disable_chunk_backup true\n</buffer>",
        )));
        assert!(f.compress_gzip && f.disable_chunk_backup);
    }

    fn config_errors(section: &str) -> Vec<String> {
        let text = format!("<match **>\n @type elasticsearch\n host h\n {section}\n</match>\n");
        Config::from_str_at(&text, std::path::Path::new("t.conf"))
            .map(|_| Vec::new())
            .unwrap_or_else(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn bad_time_key_parameters_are_errors_with_their_line() {
        let e = config_errors("<buffer time>\n timekey 1h\n timekey_zone Asia/Tokyo\n</buffer>");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.conf:6: "), "{e:?}");
        assert!(e[0].contains("fixed offset such as +0900"), "{e:?}");
        let e = config_errors("<buffer time>\n timekey 0.5\n</buffer>");
        assert!(e[0].contains("must be at least 1s"), "{e:?}");
        let e = config_errors("<buffer time>\n</buffer>");
        assert!(e[0].contains("needs a 'timekey'"), "{e:?}");
    }

    /// Every `<buffer>` parameter accepted without effect is listed with its line.
    #[test]
    fn no_effect_parameters_are_named_with_their_line() {
        let text = "<match a.**>\n @type elasticsearch\n host h\n <buffer tag, $.kubernetes.ns>\n  flush_thread_interval 0.5\n  flush_thread_burst_interval 0.5\n  delayed_commit_timeout 30s\n  retry_secondary_threshold 0.5\n  compress gzip\n </buffer>\n</match>\n<match b.**>\n @type forward\n <server>\n  host h\n </server>\n <buffer time>\n  @type file\n  path /tmp/b\n  path_suffix .log\n  timekey 1d\n  flush_interval 10s\n </buffer>\n</match>\n";
        let cfg = Config::from_str_at(text, std::path::Path::new("n.conf")).unwrap();
        let mut got: Vec<(usize, String)> = cfg
            .no_effect
            .iter()
            .map(|n| (n.loc.line, n.name.clone()))
            .collect();
        got.sort();
        let want: Vec<(usize, String)> = [
            (4, "chunk keys $.kubernetes.ns"),
            (5, "flush_thread_interval"),
            (6, "flush_thread_burst_interval"),
            (7, "delayed_commit_timeout"),
            (8, "retry_secondary_threshold"),
            (9, "compress"),
            (20, "path_suffix"),
            (22, "flush_interval"),
        ]
        .iter()
        .map(|(l, n)| (*l, n.to_string()))
        .collect();
        assert_eq!(got, want, "{:#?}", cfg.no_effect);
        let lazy = cfg
            .no_effect
            .iter()
            .find(|n| n.name == "flush_interval")
            .unwrap();
        assert!(lazy.reason.contains("flush_mode lazy"), "{lazy:?}");
        // implemented parameters are not listed
        let quiet = Config::from_str_at(
            "<match **>\n @type elasticsearch\n <buffer tag, time>\n  @type file\n  path /tmp/q\n  timekey 1h\n  timekey_wait 1s\n  timekey_use_utc true\n  compress gzip\n  retry_type periodic\n  retry_randomize false\n  retry_exponential_backoff_base 3\n  queued_chunks_limit_size 4\n  queue_limit_length 8\n  disable_chunk_backup true\n </buffer>\n</match>\n",
            std::path::Path::new("q.conf"),
        )
        .unwrap();
        assert!(quiet.no_effect.is_empty(), "{:?}", quiet.no_effect);
    }
}
