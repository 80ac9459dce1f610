//! The file buffer (`<buffer @type file>`, `path DIR`): chunks are append-only files in `DIR`
//! (format: [`super::chunk_file`]), and a push resolves only once its bytes are on disk.
//!
//! # Group commit
//! One dedicated writer thread owns the staged chunk's file (blocking file I/O never runs on
//! the Tokio workers). [`FileBuffer::push`] encodes its frame, sends it to the writer and
//! waits. The writer takes **every** request waiting in its channel, writes them all, then
//! calls `fdatasync` once for the group and answers every push of the group. While it is in
//! `fdatasync`, new pushes pile up in the channel and form the next group, so N connections
//! pay about one fsync per group, not one each. A new chunk file also fsyncs its directory
//! (once per chunk) so that the file's name survives a power loss.
//!
//! # States
//! staged (the file the writer appends to) → queued (the writer queues it once it is full,
//! after each group with `flush_mode immediate`, or when [`take`](FileBuffer::take) asks
//! because it is `flush_interval` old) → in flight (a flush worker read it back from disk) →
//! deleted (the worker's [`release`](FileBuffer::release) unlinks it). Only the staged chunk's
//! metadata and the chunks in flight are in memory; queued chunks are only on disk.
//!
//! # Shutdown
//! With `flush_at_shutdown false` (the default for file buffers) [`close`](FileBuffer::close)
//! makes `take` return `None` at once: everything not delivered stays on disk and is resumed
//! at the next start ([`super::recovery`]). With `true`, the staged chunk is queued and
//! every queued chunk is handed out first.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use super::chunk_file;
use super::recovery::{self, chunk_name};
use super::{
    BufferCounters, BufferError, BufferSettings, BufferStats, Chunk, FlushMode, OverflowAction,
};
use crate::event::{EmitError, EventBatch, EventTime};

/// A chunk file waiting for delivery (only its metadata is in memory).
#[derive(Debug, Clone)]
pub struct QueuedChunk {
    pub seq: u64,
    pub path: PathBuf,
    pub records: u64,
    /// Bytes of its frames (what counts against `total_limit_size`).
    pub bytes: u64,
}

/// The file behind a chunk handed to a flush worker.
#[derive(Debug, Clone)]
pub struct ChunkRef {
    pub seq: u64,
    pub path: PathBuf,
}

/// What the take side needs to know of the staged chunk.
struct StagedInfo {
    seq: u64,
    created: Instant,
    /// A rotation was already requested from the writer.
    rotate_requested: bool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<QueuedChunk>,
    staged: Option<StagedInfo>,
    /// Reserved by pending pushes + staged + queued + in flight.
    total: u64,
    closed: bool,
}

struct Shared {
    name: String,
    dir: PathBuf,
    settings: BufferSettings,
    state: Mutex<State>,
    /// Space was freed.
    space: Notify,
    /// A chunk was queued (or the buffer closed).
    data: Notify,
    counters: BufferCounters,
}

/// Where the writer answers a push.
type Reply = oneshot::Sender<Result<(), String>>;

enum Cmd {
    Append {
        frame: Vec<u8>,
        tag: Arc<str>,
        records: u64,
        reply: Reply,
    },
    /// Queue the staged chunk `seq` if it is still the staged one.
    Rotate(u64),
    /// Unlink a delivered (or dropped) chunk.
    Delete(PathBuf),
    /// Move an unreadable chunk to `corrupt/`.
    MoveAside(PathBuf, String),
    /// Answered once everything sent before it is done.
    Barrier(oneshot::Sender<()>),
}

/// The file buffer. See the module docs.
pub struct FileBuffer {
    shared: Arc<Shared>,
    tx: Mutex<Option<mpsc::Sender<Cmd>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    _lock: File,
}

impl Drop for FileBuffer {
    /// Lets the writer finish what was sent to it (deletes of delivered chunks), then returns.
    fn drop(&mut self) {
        self.tx.lock().unwrap().take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl FileBuffer {
    /// Locks `settings.path`, resumes what is there and starts the writer thread.
    pub fn open(name: &str, settings: BufferSettings) -> Result<FileBuffer, BufferError> {
        let dir = settings.path.clone().ok_or(BufferError::NoPath)?;
        let lock = recovery::lock_dir(&dir)?;
        let counters = BufferCounters::default();
        let rec = recovery::recover(name, &dir, &counters)?;
        let total = rec.queue.iter().map(|c| c.bytes).sum();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            dir: dir.clone(),
            settings,
            state: Mutex::new(State {
                queue: rec.queue,
                total,
                ..Default::default()
            }),
            space: Notify::new(),
            data: Notify::new(),
            counters,
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            next_seq: rec.next_seq,
            staged: None,
        };
        let writer = std::thread::Builder::new()
            .name(format!("buffer-{name}"))
            .spawn(move || writer.run(rx))
            .map_err(|e| BufferError::Io {
                path: dir.clone(),
                source: e,
            })?;
        Ok(FileBuffer {
            shared,
            tx: Mutex::new(Some(tx)),
            writer: Some(writer),
            _lock: lock,
        })
    }

    pub fn settings(&self) -> &BufferSettings {
        &self.shared.settings
    }

    /// The buffer directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn send(&self, cmd: Cmd) -> bool {
        self.tx
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|tx| tx.send(cmd).is_ok())
    }

    pub fn total_bytes(&self) -> u64 {
        self.shared.state.lock().unwrap().total
    }

    pub fn stats(&self) -> BufferStats {
        let (q, qb, t) = {
            let st = self.shared.state.lock().unwrap();
            (
                st.queue.len() as u64,
                st.queue.iter().map(|c| c.bytes).sum(),
                st.total,
            )
        };
        self.shared.counters.snapshot(q, qb, t)
    }

    /// Writes `batch` to the staged chunk; resolves once it is written and fsynced.
    pub async fn push(&self, batch: EventBatch) -> Result<(), EmitError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sh = &self.shared;
        let mut frame = Vec::with_capacity(chunk_file::frame_len(&batch));
        chunk_file::write_frame(&mut frame, &batch);
        let bytes = frame.len() as u64;
        self.reserve(bytes).await?;
        let (reply, rx) = oneshot::channel();
        let records = batch.len() as u64;
        let sent = self.send(Cmd::Append {
            frame,
            tag: batch.tag.clone(),
            records,
            reply,
        });
        let result = if sent {
            rx.await
                .unwrap_or_else(|_| Err("the buffer writer stopped".into()))
        } else {
            Err("the buffer writer stopped".into())
        };
        match result {
            Ok(()) => {
                sh.counters
                    .pushed_records
                    .fetch_add(records, Ordering::Relaxed);
                Ok(())
            }
            Err(reason) => {
                self.free(bytes);
                Err(EmitError::Output {
                    output: sh.name.clone(),
                    reason: format!("file buffer: {reason}"),
                })
            }
        }
    }

    /// Waits until `bytes` fit under `total_limit_size` (per `overflow_action`) and reserves them.
    async fn reserve(&self, bytes: u64) -> Result<(), EmitError> {
        let sh = &self.shared;
        loop {
            let notified = sh.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = sh.state.lock().unwrap();
                if st.closed {
                    return Err(EmitError::ShuttingDown);
                }
                // A batch larger than the whole buffer is accepted into an empty buffer.
                if st.total == 0 || st.total + bytes <= sh.settings.total_limit_size {
                    st.total += bytes;
                    return Ok(());
                }
                sh.counters.overflows.fetch_add(1, Ordering::Relaxed);
                match sh.settings.overflow_action {
                    OverflowAction::ThrowException => {
                        return Err(EmitError::BufferOverflow {
                            output: sh.name.clone(),
                            reason: format!(
                                "total_limit_size {} bytes reached ({} held)",
                                sh.settings.total_limit_size, st.total
                            ),
                        })
                    }
                    OverflowAction::DropOldestChunk => {
                        if let Some(old) = st.queue.pop_front() {
                            st.total -= old.bytes;
                            drop(st);
                            sh.counters.dropped_chunks.fetch_add(1, Ordering::Relaxed);
                            sh.counters
                                .dropped_records
                                .fetch_add(old.records, Ordering::Relaxed);
                            tracing::warn!(output = %sh.name, records = old.records, file = %old.path.display(), "buffer full: dropped the oldest chunk (overflow_action drop_oldest_chunk)");
                            self.send(Cmd::Delete(old.path));
                            continue;
                        }
                        // Nothing queued to drop (staged or in flight): wait like `block`.
                    }
                    OverflowAction::Block => {}
                }
            }
            notified.await;
        }
    }

    fn free(&self, bytes: u64) {
        let mut st = self.shared.state.lock().unwrap();
        st.total = st.total.saturating_sub(bytes);
        drop(st);
        self.shared.space.notify_waiters();
    }

    /// Waits for the next queued chunk and reads it back from disk. `None` once closed (and,
    /// with `flush_at_shutdown`, drained).
    pub async fn take(&self) -> Option<Chunk> {
        let sh = &self.shared;
        loop {
            let q = loop {
                let notified = sh.data.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let wait = {
                    let mut st = sh.state.lock().unwrap();
                    let drain = sh.settings.flush_at_shutdown;
                    if st.closed && !drain {
                        return None;
                    }
                    if let Some(q) = st.queue.pop_front() {
                        if !st.queue.is_empty() {
                            sh.data.notify_one();
                        }
                        break q;
                    }
                    let closed = st.closed;
                    match st.staged.as_mut() {
                        None if closed => return None,
                        None => None,
                        Some(s) => {
                            let age = s.created.elapsed();
                            let due = closed
                                || (sh.settings.flush_mode == FlushMode::Interval
                                    && age >= sh.settings.flush_interval);
                            if due {
                                if !s.rotate_requested {
                                    s.rotate_requested = true;
                                    let seq = s.seq;
                                    drop(st);
                                    if !self.send(Cmd::Rotate(seq)) {
                                        return None;
                                    }
                                }
                                None
                            } else if sh.settings.flush_mode == FlushMode::Interval {
                                Some(sh.settings.flush_interval - age)
                            } else {
                                None
                            }
                        }
                    }
                };
                match wait {
                    Some(d) => {
                        let _ = tokio::time::timeout(d, notified).await;
                    }
                    None => notified.await,
                }
            };
            let path = q.path.clone();
            let read = tokio::task::spawn_blocking(move || -> Result<_, String> {
                let data = std::fs::read(&path).map_err(|e| e.to_string())?;
                chunk_file::scan(Bytes::from(data)).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match read {
                Ok(s) => {
                    if s.torn_bytes > 0 {
                        tracing::warn!(output = %sh.name, file = %q.path.display(), cut_bytes = s.torn_bytes, "buffer: damaged frames at the end of a queued chunk; delivering the valid prefix");
                    }
                    return Some(Chunk {
                        batches: s.batches,
                        records: s.records,
                        bytes: q.bytes,
                        created: None,
                        file: Some(ChunkRef {
                            seq: q.seq,
                            path: q.path,
                        }),
                        // Read back from disk: only chunks in flight are in memory, at most
                        // one per flush worker, so they are not counted in the memory budget.
                        memory: Default::default(),
                    });
                }
                Err(e) => {
                    self.free(q.bytes);
                    self.send(Cmd::MoveAside(q.path, e));
                }
            }
        }
    }

    /// The chunk is delivered (or dead-lettered): free its bytes and delete its file.
    pub fn release(&self, chunk: &Chunk) {
        self.free(chunk.bytes);
        if let Some(f) = &chunk.file {
            self.send(Cmd::Delete(f.path.clone()));
        }
    }

    /// Waits until the writer has done everything asked before (deletes of released chunks
    /// included), so that a clean shutdown leaves only undelivered chunks on disk.
    pub async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Cmd::Barrier(tx)) {
            let _ = rx.await;
        }
    }

    /// Stops accepting pushes (see the module docs for what `take` does then).
    pub fn close(&self) {
        self.shared.state.lock().unwrap().closed = true;
        self.shared.data.notify_waiters();
        self.shared.space.notify_waiters();
        let s = self.stats();
        tracing::info!(
            output = %self.shared.name,
            queued_chunks = s.queue_length, held_bytes = s.total_bytes,
            dropped_chunks = s.dropped_chunks, dropped_records = s.dropped_records,
            fsyncs = s.fsyncs, "file buffer closed"
        );
    }
}

/// The staged chunk, owned by the writer thread.
struct Staged {
    seq: u64,
    path: PathBuf,
    file: File,
    records: u64,
    /// Frame bytes written.
    bytes: u64,
    /// Written since the last fsync.
    dirty: bool,
    /// Set when a write failed: the file may hold a partial frame.
    broken: bool,
}

struct Writer {
    shared: Arc<Shared>,
    next_seq: u64,
    staged: Option<Staged>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while let Ok(c) = rx.try_recv() {
                group.push(c);
            }
            self.commit(group);
        }
        // Every sender is gone (the buffer was dropped): sync what is staged.
        if let Some(s) = self.staged.take() {
            let _ = s.file.sync_data();
        }
    }

    /// One group commit.
    fn commit(&mut self, group: Vec<Cmd>) {
        let shared = self.shared.clone();
        let limits = &shared.settings;
        let mut replies: Vec<(Reply, Result<(), String>)> = Vec::new();
        let mut full: Vec<Staged> = Vec::new();
        let mut new_file = false;
        let mut rotate = false;
        let mut barriers = Vec::new();
        for cmd in group {
            match cmd {
                Cmd::Append {
                    frame,
                    tag,
                    records,
                    reply,
                } => {
                    if let Some(s) = &self.staged {
                        if s.records > 0
                            && (s.bytes + frame.len() as u64 > limits.chunk_limit_size
                                || s.records + records > limits.chunk_limit_records)
                        {
                            full.push(self.staged.take().expect("checked"));
                        }
                    }
                    if self.staged.is_none() {
                        match self.create(&tag) {
                            Ok(s) => {
                                new_file = true;
                                self.staged = Some(s);
                            }
                            Err(e) => {
                                replies.push((reply, Err(e)));
                                continue;
                            }
                        }
                    }
                    let s = self.staged.as_mut().expect("created above");
                    match s.file.write_all(&frame) {
                        Ok(()) => {
                            s.records += records;
                            s.bytes += frame.len() as u64;
                            s.dirty = true;
                            replies.push((reply, Ok(())));
                        }
                        Err(e) => {
                            s.broken = true;
                            replies.push((reply, Err(format!("{}: {e}", s.path.display()))));
                        }
                    }
                }
                Cmd::Rotate(seq) => {
                    if self.staged.as_ref().is_some_and(|s| s.seq == seq) {
                        rotate = true;
                    }
                }
                Cmd::Delete(path) => {
                    if let Err(e) = std::fs::remove_file(&path) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::error!(output = %self.shared.name, file = %path.display(), error = %e, "buffer: cannot delete a delivered chunk (it will be delivered again after a restart)");
                        }
                    }
                }
                Cmd::Barrier(done) => barriers.push(done),
                Cmd::MoveAside(path, why) => recovery::move_aside(
                    &self.shared.name,
                    &self.shared.dir,
                    &path,
                    &why,
                    &self.shared.counters,
                ),
            }
        }
        // Make the group durable: the files that filled up, then the staged one.
        let mut sync_err: Option<String> = None;
        for s in full.iter_mut().chain(self.staged.as_mut()) {
            if s.dirty {
                self.shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                match s.file.sync_data() {
                    Ok(()) => s.dirty = false,
                    Err(e) => {
                        s.broken = true;
                        sync_err = Some(format!("fsync {}: {e}", s.path.display()));
                    }
                }
            }
        }
        if new_file && sync_err.is_none() {
            if let Err(e) = File::open(&self.shared.dir).and_then(|d| d.sync_all()) {
                sync_err = Some(format!("fsync {}: {e}", self.shared.dir.display()));
            }
        }
        if let Some(s) = &self.staged {
            let st = self.shared.settings.flush_mode;
            if rotate
                || s.broken
                || st == FlushMode::Immediate
                || s.bytes >= limits.chunk_limit_size
                || s.records >= limits.chunk_limit_records
            {
                full.push(self.staged.take().expect("checked"));
            }
        }
        // Queue the finished chunks, then answer the pushes.
        if !full.is_empty() || self.staged.is_none() {
            let mut st = self.shared.state.lock().unwrap();
            for s in full {
                if s.records == 0 {
                    let _ = std::fs::remove_file(&s.path);
                    continue;
                }
                st.queue.push_back(QueuedChunk {
                    seq: s.seq,
                    path: s.path,
                    records: s.records,
                    bytes: s.bytes,
                });
                self.shared.data.notify_one();
            }
            if self.staged.is_none() {
                st.staged = None;
            }
            if st.closed {
                self.shared.data.notify_waiters();
            }
        }
        for (reply, r) in replies {
            let r = match (&sync_err, r) {
                (Some(e), Ok(())) => Err(e.clone()),
                (_, r) => r,
            };
            let _ = reply.send(r);
        }
        for b in barriers {
            let _ = b.send(());
        }
    }

    /// Creates the next chunk file with its header (synced with the group).
    fn create(&mut self, tag: &str) -> Result<Staged, String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.shared.dir.join(chunk_name(seq));
        let mut head = Vec::with_capacity(64);
        chunk_file::write_header(&mut head, EventTime::now(), tag);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&head).map(|()| f))
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        self.shared.state.lock().unwrap().staged = Some(StagedInfo {
            seq,
            created: Instant::now(),
            rotate_requested: false,
        });
        // Wake a flush worker so that it starts the flush_interval clock of this chunk.
        self.shared.data.notify_one();
        Ok(Staged {
            seq,
            path,
            file,
            records: 0,
            bytes: 0,
            dirty: true,
            broken: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use std::time::Duration;

    fn batch(n: usize) -> EventBatch {
        EventBatch::new(
            "t",
            (0..n)
                .map(|i| {
                    Event::new(
                        EventTime::new(1, i as u32),
                        Bytes::from(vec![0x81, 0xa1, b'i', 0xcd, (i >> 8) as u8, i as u8]),
                    )
                })
                .collect(),
        )
    }

    fn settings(dir: &Path) -> BufferSettings {
        BufferSettings {
            path: Some(dir.to_path_buf()),
            flush_mode: FlushMode::Lazy,
            chunk_limit_records: 10,
            flush_at_shutdown: false,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pushes_survive_a_reopen_and_release_deletes() {
        let d = tempfile::tempdir().unwrap();
        {
            let b = FileBuffer::open("t", settings(d.path())).unwrap();
            for _ in 0..3 {
                b.push(batch(4)).await.unwrap();
            }
            let c = b.take().await.unwrap();
            assert_eq!(c.records, 8);
            assert_eq!(c.batches, vec![batch(4), batch(4)]);
            // taken but not released: stays on disk
            b.close();
            assert!(b.take().await.is_none());
            assert!(matches!(
                b.push(batch(1)).await,
                Err(EmitError::ShuttingDown)
            ));
        }
        let b = FileBuffer::open("t", settings(d.path())).unwrap();
        let s = b.stats();
        assert_eq!((s.recovered_chunks, s.recovered_records), (2, 12));
        let c1 = b.take().await.unwrap();
        let c2 = b.take().await.unwrap();
        assert_eq!((c1.records, c2.records), (8, 4));
        b.release(&c1);
        b.release(&c2);
        assert_eq!(b.total_bytes(), 0);
        b.close();
        drop(b);
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| recovery::chunk_seq(&e.unwrap().path()))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn group_commit_uses_fewer_fsyncs_than_pushes() {
        let d = tempfile::tempdir().unwrap();
        let b = Arc::new(
            FileBuffer::open(
                "t",
                BufferSettings {
                    chunk_limit_records: u64::MAX,
                    ..settings(d.path())
                },
            )
            .unwrap(),
        );
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.push(batch(1)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let s = b.stats();
        assert_eq!(s.pushed_records, 64);
        assert!(s.fsyncs >= 1 && s.fsyncs <= 64, "{s:?}");
    }

    #[tokio::test]
    async fn interval_flush_and_flush_at_shutdown() {
        let d = tempfile::tempdir().unwrap();
        let b = FileBuffer::open(
            "t",
            BufferSettings {
                flush_mode: FlushMode::Interval,
                flush_interval: Duration::from_millis(50),
                flush_at_shutdown: true,
                chunk_limit_records: u64::MAX,
                ..settings(d.path())
            },
        )
        .unwrap();
        b.push(batch(2)).await.unwrap();
        let c = tokio::time::timeout(Duration::from_secs(5), b.take())
            .await
            .expect("flushed after the interval")
            .unwrap();
        assert_eq!(c.records, 2);
        b.release(&c);
        b.push(batch(3)).await.unwrap();
        b.close();
        let c = tokio::time::timeout(Duration::from_secs(5), b.take())
            .await
            .unwrap()
            .expect("staged chunk handed out at shutdown");
        assert_eq!(c.records, 3);
        b.release(&c);
        assert!(b.take().await.is_none());
    }

    #[tokio::test]
    async fn drop_oldest_chunk_counts() {
        let d = tempfile::tempdir().unwrap();
        let one = chunk_file::frame_len(&batch(1)) as u64;
        let b = FileBuffer::open(
            "t",
            BufferSettings {
                chunk_limit_records: 1,
                total_limit_size: one * 2,
                overflow_action: OverflowAction::DropOldestChunk,
                ..settings(d.path())
            },
        )
        .unwrap();
        for _ in 0..5 {
            b.push(batch(1)).await.unwrap();
        }
        let s = b.stats();
        assert_eq!((s.dropped_chunks, s.dropped_records), (3, 3));
        assert_eq!(s.queue_length, 2);
    }

    #[tokio::test]
    async fn throw_exception_and_block_at_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let one = chunk_file::frame_len(&batch(1)) as u64;
        let s = BufferSettings {
            chunk_limit_records: 1,
            total_limit_size: one * 2,
            ..settings(d.path())
        };
        let b = FileBuffer::open("t", s.clone()).unwrap();
        b.push(batch(1)).await.unwrap();
        b.push(batch(1)).await.unwrap();
        assert!(matches!(
            b.push(batch(1)).await,
            Err(EmitError::BufferOverflow { .. })
        ));
        assert_eq!(b.stats().overflows, 1);
        drop(b);

        let d = tempfile::tempdir().unwrap();
        let b = Arc::new(
            FileBuffer::open(
                "t",
                BufferSettings {
                    path: Some(d.path().to_path_buf()),
                    overflow_action: OverflowAction::Block,
                    ..s
                },
            )
            .unwrap(),
        );
        b.push(batch(1)).await.unwrap();
        b.push(batch(1)).await.unwrap();
        let b2 = b.clone();
        let blocked = tokio::spawn(async move { b2.push(batch(1)).await });
        // Released only by the take/release below: the push cannot finish before.
        let c = b.take().await.unwrap();
        assert!(!blocked.is_finished(), "push must wait for space");
        b.release(&c);
        tokio::time::timeout(Duration::from_secs(5), blocked)
            .await
            .expect("push resumes once space is freed")
            .unwrap()
            .unwrap();
    }
}
