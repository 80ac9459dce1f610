//! The file buffer (`<buffer @type file>`, `path DIR`): chunks are append-only files in `DIR`
//! (format: [`super::chunk_file`]), and a push resolves only once its bytes are on disk.
//!
//! # Group commit
//! One dedicated writer thread owns the staged chunks' files (blocking file I/O never runs on
//! the Tokio workers). [`FileBuffer::push`] encodes its frames (one per chunk key the batch
//! touches, gzip-compressed with `compress gzip`), sends them to the writer and waits. The
//! writer takes **every** request waiting in its channel, writes them all, then calls
//! `fdatasync` once per file written for the group and answers every push of the group.
//! While it is in `fdatasync`, new pushes pile up in the channel and form the next group, so N
//! connections pay about one fsync per group, not one each. A new chunk file also fsyncs its
//! directory (once per chunk) so that the file's name survives a power loss.
//!
//! # States
//! staged (a file the writer appends to; one per chunk key, see [`super::chunk_key`]) →
//! queued (the writer queues it once it is full, after each group with `flush_mode
//! immediate`, or once it is due: the writer sleeps until the next due time, so this does not
//! depend on a flush worker being idle; at most `queued_chunks_limit_size` chunks are queued
//! by time) → in flight (a flush worker read it back from disk) → deleted (the worker's
//! [`release`](FileBuffer::release) unlinks it). Only the staged chunks' metadata and the
//! chunks in flight are in memory; queued chunks are only on disk.
//!
//! # Shutdown
//! With `flush_at_shutdown false` (the default for file buffers) [`close`](FileBuffer::close)
//! makes `take` return `None` at once: everything not delivered stays on disk and is resumed
//! at the next start ([`super::recovery`]). With `true`, the staged chunks are queued and
//! every queued chunk is handed out first.

use std::collections::{BTreeMap, VecDeque};
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
    BufferCounters, BufferError, BufferSettings, BufferStats, Chunk, ChunkKey, FlushMode,
    OverflowAction,
};
use crate::event::{EmitError, EventBatch, EventTime};

/// A chunk file waiting for delivery (only its metadata is in memory).
#[derive(Debug, Clone)]
pub struct QueuedChunk {
    pub seq: u64,
    pub path: PathBuf,
    pub records: u64,
    /// Bytes of its valid frames on disk (what counts against `total_limit_size`).
    pub bytes: u64,
    /// Recovery already reported damaged frames in it (not reported again when it is read).
    pub damage_reported: bool,
}

/// The file behind a chunk handed to a flush worker.
#[derive(Debug, Clone)]
pub struct ChunkRef {
    pub seq: u64,
    pub path: PathBuf,
}

#[derive(Default)]
struct State {
    queue: VecDeque<QueuedChunk>,
    /// Number of staged chunk files (the writer's).
    staged: usize,
    /// A due chunk waits for the queue to get shorter than `queued_chunks_limit_size`.
    due_blocked: bool,
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

/// The frame of one chunk key's part of a pushed batch.
struct Part {
    key: ChunkKey,
    tag: Arc<str>,
    frame: chunk_file::EncodedFrame,
    records: u64,
}

enum Cmd {
    Append {
        parts: Vec<Part>,
        reply: Reply,
    },
    /// Look at the staged chunks again (the queue got shorter, or the buffer is closing).
    Wake,
    /// Unlink a delivered (or dropped) chunk.
    Delete(PathBuf),
    /// Move an unreadable chunk to `corrupt/`.
    MoveAside(PathBuf, String),
    /// Answered once everything sent before it is done.
    Barrier(oneshot::Sender<()>),
    /// Tests: the writer stops until the sender is dropped, so that what is sent meanwhile
    /// forms one group.
    #[cfg(test)]
    Hold(mpsc::Receiver<()>),
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
        let rec = recovery::recover(name, &dir, settings.disable_chunk_backup, &counters)?;
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
            staged: BTreeMap::new(),
            blocked: false,
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

    /// Writes `batch` to the staged chunk(s) of its key(s); resolves once it is written and
    /// fsynced.
    pub async fn push(&self, batch: EventBatch) -> Result<(), EmitError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sh = &self.shared;
        let records = batch.len() as u64;
        let gzip = sh.settings.compress_gzip;
        let parts: Vec<Part> = sh
            .settings
            .chunking
            .split(batch)
            .map(|(key, b)| Part {
                key,
                frame: chunk_file::encode_frame(&b, gzip),
                records: b.len() as u64,
                tag: b.tag,
            })
            .collect();
        let bytes: u64 = parts.iter().map(|p| p.frame.bytes.len() as u64).sum();
        self.reserve(bytes).await?;
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Cmd::Append { parts, reply });
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
                            let wake = std::mem::take(&mut st.due_blocked);
                            drop(st);
                            if wake {
                                self.send(Cmd::Wake);
                            }
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
                {
                    let mut st = sh.state.lock().unwrap();
                    let drain = sh.settings.flush_at_shutdown;
                    if st.closed && !drain {
                        return None;
                    }
                    if let Some(q) = st.queue.pop_front() {
                        if !st.queue.is_empty() {
                            sh.data.notify_one();
                        }
                        let wake = std::mem::take(&mut st.due_blocked);
                        drop(st);
                        if wake {
                            self.send(Cmd::Wake);
                        }
                        break q;
                    }
                    if st.closed && st.staged == 0 {
                        return None;
                    }
                }
                notified.await;
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
                    if (s.torn_bytes > 0 || !s.skipped.is_empty()) && !q.damage_reported {
                        tracing::warn!(output = %sh.name, file = %q.path.display(), skipped_bytes = s.skipped_bytes(), cut_bytes = s.torn_bytes, records = s.records, "buffer: damaged frames in a queued chunk; delivering every valid frame");
                    }
                    return Some(Chunk {
                        batches: s.batches,
                        records: s.records,
                        bytes: q.bytes,
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
        // The writer queues the staged chunks (with flush_at_shutdown).
        self.send(Cmd::Wake);
        let s = self.stats();
        tracing::info!(
            output = %self.shared.name,
            queued_chunks = s.queue_length, held_bytes = s.total_bytes,
            dropped_chunks = s.dropped_chunks, dropped_records = s.dropped_records,
            fsyncs = s.fsyncs, "file buffer closed"
        );
    }

    /// Tests: stops the writer until the returned sender is dropped.
    #[cfg(test)]
    fn hold_writer(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        assert!(self.send(Cmd::Hold(rx)));
        tx
    }
}

/// A staged chunk, owned by the writer thread.
struct Staged {
    seq: u64,
    path: PathBuf,
    file: File,
    records: u64,
    /// Frame bytes written (on disk).
    bytes: u64,
    /// Body bytes before compression (what `chunk_limit_size` limits).
    body_bytes: u64,
    /// When it is due (see `BufferSettings::due_at`).
    due: Option<Instant>,
    /// Written since the last fsync.
    dirty: bool,
    /// Set when a write failed: the file may hold a partial frame.
    broken: bool,
}

struct Writer {
    shared: Arc<Shared>,
    next_seq: u64,
    staged: BTreeMap<ChunkKey, Staged>,
    /// Due chunks wait for room in the queue (until a `Wake`).
    blocked: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            let first = match self.next_due() {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                },
            };
            #[cfg(test)]
            let first = match first {
                Some(Cmd::Hold(until)) => {
                    let _ = until.recv();
                    None
                }
                other => other,
            };
            let mut group: Vec<Cmd> = first.into_iter().collect();
            while let Ok(c) = rx.try_recv() {
                group.push(c);
            }
            self.commit(group);
        }
        // Every sender is gone (the buffer was dropped): sync what is staged.
        for s in self.staged.values() {
            let _ = s.file.sync_data();
        }
    }

    /// The earliest due time among the staged chunks that can be queued.
    fn next_due(&self) -> Option<Instant> {
        let now = Instant::now();
        self.staged
            .values()
            .filter_map(|s| s.due)
            .filter(|d| !self.blocked || *d > now)
            .min()
    }

    /// One group commit: writes, fsyncs, then queues what is full or due, then answers.
    fn commit(&mut self, group: Vec<Cmd>) {
        let shared = self.shared.clone();
        let limits = &shared.settings;
        let mut replies: Vec<(Reply, Result<(), String>)> = Vec::new();
        let mut full: Vec<Staged> = Vec::new();
        let mut new_file = false;
        let mut barriers = Vec::new();
        for cmd in group {
            match cmd {
                Cmd::Append { parts, reply } => {
                    let mut result = Ok(());
                    for part in parts {
                        if let Err(e) = self.append(part, &mut full, &mut new_file) {
                            result = Err(e);
                        }
                    }
                    replies.push((reply, result));
                }
                Cmd::Wake => self.blocked = false,
                Cmd::Delete(path) => {
                    if let Err(e) = std::fs::remove_file(&path) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::error!(output = %shared.name, file = %path.display(), error = %e, "buffer: cannot delete a delivered chunk (it will be delivered again after a restart)");
                        }
                    }
                }
                Cmd::Barrier(done) => barriers.push(done),
                Cmd::MoveAside(path, why) => recovery::move_aside(
                    &shared.name,
                    &shared.dir,
                    &path,
                    &why,
                    limits.disable_chunk_backup,
                    &shared.counters,
                ),
                #[cfg(test)]
                Cmd::Hold(until) => {
                    let _ = until.recv();
                }
            }
        }
        // Make the group durable: the files that filled up, then the staged ones.
        let mut sync_err: Option<String> = None;
        for s in full.iter_mut().chain(self.staged.values_mut()) {
            if s.dirty {
                shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
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
            if let Err(e) = File::open(&shared.dir).and_then(|d| d.sync_all()) {
                sync_err = Some(format!("fsync {}: {e}", shared.dir.display()));
            }
        }
        // Queue what is full (or broken, or immediate, or closing), then what is due.
        {
            let mut st = shared.state.lock().unwrap();
            let closing = st.closed && limits.flush_at_shutdown;
            let done: Vec<ChunkKey> = self
                .staged
                .iter()
                .filter(|(_, s)| {
                    closing
                        || s.broken
                        || limits.flush_mode == FlushMode::Immediate
                        || s.body_bytes >= limits.chunk_limit_size
                        || s.records >= limits.chunk_limit_records
                })
                .map(|(k, _)| k.clone())
                .collect();
            full.extend(done.iter().filter_map(|k| self.staged.remove(k)));
            for s in full {
                self.enqueue(&mut st, s);
            }
            let now = Instant::now();
            let mut due: Vec<(Instant, ChunkKey)> = self
                .staged
                .iter()
                .filter_map(|(k, s)| s.due.filter(|d| *d <= now).map(|d| (d, k.clone())))
                .collect();
            due.sort();
            for (_, key) in due {
                if st.queue.len() >= limits.queued_chunks_limit {
                    self.blocked = true;
                    st.due_blocked = true;
                    break;
                }
                let s = self.staged.remove(&key).expect("listed above");
                self.enqueue(&mut st, s);
            }
            st.staged = self.staged.len();
            if st.closed {
                shared.data.notify_waiters();
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

    /// Writes one part to the staged chunk of its key (a full chunk goes to `full` first).
    fn append(
        &mut self,
        part: Part,
        full: &mut Vec<Staged>,
        new_file: &mut bool,
    ) -> Result<(), String> {
        let limits = &self.shared.settings;
        if let Some(s) = self.staged.get(&part.key) {
            if s.records > 0
                && (s.body_bytes + part.frame.body_len > limits.chunk_limit_size
                    || s.records + part.records > limits.chunk_limit_records)
            {
                full.push(self.staged.remove(&part.key).expect("checked"));
            }
        }
        if !self.staged.contains_key(&part.key) {
            let s = self.create(&part.key, &part.tag)?;
            *new_file = true;
            self.staged.insert(part.key.clone(), s);
        }
        let s = self.staged.get_mut(&part.key).expect("created above");
        match s.file.write_all(&part.frame.bytes) {
            Ok(()) => {
                s.records += part.records;
                s.bytes += part.frame.bytes.len() as u64;
                s.body_bytes += part.frame.body_len;
                s.dirty = true;
                Ok(())
            }
            Err(e) => {
                s.broken = true;
                Err(format!("{}: {e}", s.path.display()))
            }
        }
    }

    /// Puts a finished chunk in the queue (an empty one is deleted).
    fn enqueue(&self, st: &mut State, s: Staged) {
        if s.records == 0 {
            let _ = std::fs::remove_file(&s.path);
            return;
        }
        st.queue.push_back(QueuedChunk {
            seq: s.seq,
            path: s.path,
            records: s.records,
            bytes: s.bytes,
            damage_reported: false,
        });
        self.shared.data.notify_one();
    }

    /// Creates the next chunk file with its header (synced with the group).
    fn create(&mut self, key: &ChunkKey, tag: &str) -> Result<Staged, String> {
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
        Ok(Staged {
            seq,
            path,
            file,
            records: 0,
            bytes: 0,
            body_bytes: 0,
            due: self.shared.settings.due_at(key, Instant::now()),
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

    /// Waits until `cond` holds (panics after 10 s).
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

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

    /// 64 pushes sent while the writer is held form one group: one fsync for all of them.
    /// A writer that synced per push would make 64.
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
        let one = chunk_file::encode_frame(&batch(1), false).bytes.len() as u64;
        let hold = b.hold_writer();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.push(batch(1)).await })
            })
            .collect();
        // Every push reserved its bytes and sent its frame (one step, no await between).
        until("64 pushes waiting for the writer", || {
            b.total_bytes() == 64 * one
        })
        .await;
        drop(hold);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let s = b.stats();
        assert_eq!(s.pushed_records, 64);
        assert_eq!(s.fsyncs, 1, "one group commit for 64 pushes: {s:?}");
        // and the pushes after it get their own group
        b.push(batch(1)).await.unwrap();
        assert_eq!(b.stats().fsyncs, 2);
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
        let t0 = Instant::now();
        b.push(batch(2)).await.unwrap();
        let c = tokio::time::timeout(Duration::from_secs(5), b.take())
            .await
            .expect("flushed after the interval")
            .unwrap();
        assert_eq!(c.records, 2);
        assert!(
            t0.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t0.elapsed()
        );
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
        let one = chunk_file::encode_frame(&batch(1), false).bytes.len() as u64;
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
        let one = chunk_file::encode_frame(&batch(1), false).bytes.len() as u64;
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

    fn all_events(chunks: &[Chunk]) -> Vec<Event> {
        chunks
            .iter()
            .flat_map(|c| c.batches.iter().flat_map(|b| b.events.iter().cloned()))
            .collect()
    }

    /// Takes every chunk that is queued, then closes (flush_at_shutdown false).
    async fn take_queued(b: &FileBuffer) -> Vec<Chunk> {
        let mut out = Vec::new();
        while b.stats().queue_length > 0 {
            out.push(b.take().await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn metadata_survives_a_restart_and_gzip_chunks_recover() {
        for gzip in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let s = BufferSettings {
                compress_gzip: gzip,
                ..settings(d.path())
            };
            let with_meta = EventBatch::new(
                "fb5",
                vec![
                    Event::with_metadata(
                        EventTime::new(7, 8),
                        Bytes::from_static(&[0x81, 0xa1, b'a', 0x01]),
                        Some(Bytes::from_static(&[0x81, 0xa1, b'k', 0xa1, b'v'])),
                    ),
                    Event::with_metadata(
                        EventTime::new(7, 9),
                        Bytes::from_static(&[0x80]),
                        Some(Bytes::from_static(&[0x80])),
                    ),
                    Event::new(EventTime::new(7, 10), Bytes::from_static(&[0x80])),
                ],
            );
            {
                let b = FileBuffer::open("t", s.clone()).unwrap();
                b.push(with_meta.clone()).await.unwrap();
                b.push(batch(300)).await.unwrap();
            }
            if gzip {
                // compressed on disk: 300 similar records take far less than their bytes
                let (disk, _) = chunk_files(d.path());
                let plain = chunk_file::body_len(&batch(300)) as u64;
                assert!(disk * 2 < plain, "{disk} on disk for {plain} of records");
            }
            let b = FileBuffer::open("t", s).unwrap();
            assert_eq!(b.stats().recovered_records, 303);
            let got = all_events(&take_queued(&b).await);
            assert_eq!(got[..3], with_meta.events[..], "gzip {gzip}");
            assert_eq!(got[3..], batch(300).events[..], "gzip {gzip}");
        }
    }

    #[tokio::test]
    async fn chunks_of_the_previous_format_recover() {
        let d = tempfile::tempdir().unwrap();
        let mut v1 = Vec::new();
        chunk_file::v1::write_header(&mut v1, EventTime::new(1, 0), "t");
        chunk_file::v1::write_frame(&mut v1, &batch(4));
        chunk_file::v1::write_frame(&mut v1, &batch(2));
        std::fs::write(d.path().join(chunk_name(5)), v1).unwrap();
        let b = FileBuffer::open("t", settings(d.path())).unwrap();
        // new pushes go to new (version 2) chunks after the old one
        b.push(batch(1)).await.unwrap();
        b.close();
        drop(b);
        let b = FileBuffer::open("t", settings(d.path())).unwrap();
        let chunks = take_queued(&b).await;
        assert_eq!(
            chunks.iter().map(|c| c.records).collect::<Vec<_>>(),
            vec![6, 1]
        );
        assert_eq!(chunks[0].batches, vec![batch(4), batch(2)]);
    }

    fn chunk_files(dir: &Path) -> (u64, Vec<PathBuf>) {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| recovery::chunk_seq(p).is_some())
            .collect();
        v.sort();
        let bytes = v.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        (bytes, v)
    }

    /// A chunk of 10 frames of 1, 2, … 10 events (55); one frame damaged at the start, in the
    /// middle and at the end: exactly the other frames' events are delivered, in order.
    #[tokio::test]
    async fn recovery_keeps_every_valid_frame_around_a_damaged_one() {
        for (damaged, name) in [(0usize, "start"), (4, "middle"), (9, "end")] {
            let d = tempfile::tempdir().unwrap();
            let mut frames = Vec::new();
            let s = BufferSettings {
                chunk_limit_records: u64::MAX,
                ..settings(d.path())
            };
            {
                let b = FileBuffer::open("t", s.clone()).unwrap();
                for n in 1..=10 {
                    let before = chunk_files(d.path()).0;
                    b.push(batch(n)).await.unwrap();
                    frames.push((before, chunk_files(d.path()).0));
                }
            }
            let (_, files) = chunk_files(d.path());
            assert_eq!(files.len(), 1, "one chunk ({name})");
            // flip a byte inside the payload of frame `damaged`
            let (start, end) = frames[damaged];
            let start = if damaged == 0 {
                start
                    + chunk_file::read_header(&std::fs::read(&files[0]).unwrap())
                        .unwrap()
                        .1 as u64
            } else {
                start
            };
            let mut data = std::fs::read(&files[0]).unwrap();
            let at = ((start + end) / 2) as usize;
            data[at] ^= 0xff;
            std::fs::write(&files[0], &data).unwrap();

            let b = FileBuffer::open("t", s).unwrap();
            let s = b.stats();
            let lost = damaged as u64 + 1;
            assert_eq!(s.recovered_records, 55 - lost, "{name}");
            let got = all_events(&take_queued(&b).await);
            let want: Vec<Event> = (1..=10)
                .filter(|n| *n != damaged + 1)
                .flat_map(|n| batch(n).events)
                .collect();
            assert_eq!(got, want, "{name}");
            let copy = d.path().join("corrupt").join(files[0].file_name().unwrap());
            if damaged == 9 {
                // the end: cut off like a torn tail, nothing after it to keep
                assert_eq!(s.torn_bytes, end - start, "{name}");
                assert_eq!(s.skipped_bytes, 0);
                assert!(!copy.exists());
            } else {
                // start or middle: skipped, the file kept as found in corrupt/
                assert_eq!(s.skipped_bytes, end - start, "{name}");
                assert_eq!(s.torn_bytes, 0);
                assert_eq!(std::fs::read(&copy).unwrap(), data, "{name}");
            }
        }
    }

    #[tokio::test]
    async fn disable_chunk_backup_deletes_instead_of_keeping() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(chunk_name(3)),
            b"not a chunk file, just damage",
        )
        .unwrap();
        let b = FileBuffer::open(
            "t",
            BufferSettings {
                disable_chunk_backup: true,
                ..settings(d.path())
            },
        )
        .unwrap();
        assert_eq!(b.stats().corrupt_files, 1);
        assert!(!d.path().join(chunk_name(3)).exists());
        assert!(!d.path().join("corrupt").join(chunk_name(3)).exists());
    }

    /// `timekey 2s` + `timekey_wait 1s`, lazy: a chunk per slice, queued by the writer's timer
    /// at slice end + 1 s while the only flush worker is busy elsewhere (nobody calls take).
    #[tokio::test]
    async fn time_slices_are_queued_at_slice_end_plus_wait_without_a_worker() {
        let d = tempfile::tempdir().unwrap();
        let b = FileBuffer::open(
            "t",
            BufferSettings {
                flush_mode: FlushMode::Lazy,
                chunk_limit_records: u64::MAX,
                chunking: super::super::Chunking {
                    by_tag: false,
                    time: Some(super::super::TimeSlicing {
                        timekey: 2,
                        wait: Duration::from_secs(1),
                        zone: super::super::SliceZone::Fixed(0),
                    }),
                },
                queued_chunks_limit: 8,
                ..settings(d.path())
            },
        )
        .unwrap();
        let now = EventTime::now();
        let ev = |secs: i64| {
            EventBatch::new(
                "t",
                vec![Event::new(
                    EventTime::new(secs, 0),
                    Bytes::from_static(&[0x80]),
                )],
            )
        };
        b.push(ev(now.secs)).await.unwrap();
        b.push(ev(now.secs + 2)).await.unwrap();
        assert_eq!(chunk_files(d.path()).1.len(), 2, "one chunk per slice");
        let slice = now.secs - now.secs.rem_euclid(2);
        let due = |start: i64| start + 2 + 1;
        until("the first slice queued", || b.stats().queue_length >= 1).await;
        let at = EventTime::now().secs;
        assert!(at >= due(slice), "queued at {at}, due at {}", due(slice));
        assert!(
            at <= due(slice) + 1,
            "queued at {at}, due at {}",
            due(slice)
        );
        until("the second slice queued", || b.stats().queue_length == 2).await;
        assert!(EventTime::now().secs >= due(slice + 2));
        let chunks = take_queued(&b).await;
        assert_eq!(
            all_events(&chunks)
                .iter()
                .map(|e| e.time.secs)
                .collect::<Vec<_>>(),
            vec![now.secs, now.secs + 2]
        );
    }

    /// Due chunks are queued only while the queue is shorter than queued_chunks_limit_size;
    /// meanwhile the staged chunk keeps growing.
    #[tokio::test]
    async fn queued_chunks_limit_makes_fewer_larger_chunks() {
        let d = tempfile::tempdir().unwrap();
        let b = FileBuffer::open(
            "t",
            BufferSettings {
                flush_mode: FlushMode::Interval,
                flush_interval: Duration::from_millis(30),
                chunk_limit_records: u64::MAX,
                queued_chunks_limit: 1,
                ..settings(d.path())
            },
        )
        .unwrap();
        b.push(batch(1)).await.unwrap();
        until("the first chunk queued", || b.stats().queue_length == 1).await;
        for _ in 0..5 {
            b.push(batch(2)).await.unwrap();
        }
        // the staged chunk becomes due, but the queue is full: it stays staged
        until("a due chunk waiting for room", || {
            b.shared.state.lock().unwrap().due_blocked
        })
        .await;
        assert_eq!(b.stats().queue_length, 1);
        let first = b.take().await.unwrap();
        assert_eq!(first.records, 1);
        until("the grown chunk queued", || b.stats().queue_length == 1).await;
        let second = b.take().await.unwrap();
        assert_eq!(second.records, 10);
    }
}
