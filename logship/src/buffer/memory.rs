//! The memory buffer (`<buffer>` with `@type memory`): chunks live in RAM only, so an
//! unflushed chunk is lost if the process dies (`kill -9`, OOM); an orderly shutdown delivers
//! it (`flush_at_shutdown` defaults to true here).
//!
//! Batches are appended to the **staged** chunk of their chunk key ([`super::chunk_key`]); a
//! staged chunk is **enqueued** once it reaches `chunk_limit_size` bytes or
//! `chunk_limit_records` events, after every push with `flush_mode immediate`, or when it is
//! due (`flush_interval`, end of its time slice + `timekey_wait`). Due chunks are enqueued by
//! the buffer's timer thread, so that it happens on time while every flush worker is busy,
//! up to `queued_chunks_limit_size` queued chunks. Flush workers [`take`](MemoryBuffer::take)
//! enqueued chunks and call [`release`](MemoryBuffer::release) once a chunk is delivered (or
//! dead-lettered): the bytes of a chunk count against `total_limit_size` until then, in
//! flight included. Events are kept exactly as pushed (wire form, v1.5 metadata included).
//!
//! When a push would exceed `total_limit_size`, `overflow_action` decides:
//! - `block`: [`push`](MemoryBuffer::push) waits for space, so the input's `emit` waits, so
//!   the Forward server stops reading its sockets — backpressure over TCP;
//! - `drop_oldest_chunk`: the oldest enqueued (not yet taken) chunk is discarded (counted and
//!   logged at WARN);
//! - `throw_exception`: the push fails with [`EmitError::BufferOverflow`]; the client gets no
//!   ack and resends.
//!
//! The events held also count against the process memory budget
//! ([`crate::memory_budget`], `<system> memory_budget`): a push first waits until its bytes fit
//! in the part of the budget that buffers may hold (three quarters), whatever `overflow_action`
//! says (that applies to `total_limit_size`), so a destination that is down holds the inputs
//! back once the budget is used up instead of growing the process past it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use super::chunk_key::Split;
use super::{
    batch_bytes, BufferCounters, BufferSettings, BufferStats, Chunk, ChunkKey, FlushMode,
    OverflowAction,
};
use crate::event::{EmitError, EventBatch};
use crate::memory_budget::{batch_memory, MemoryBudget, Reservation};

/// A staged chunk and when it is due.
struct Staged {
    chunk: Chunk,
    due: Option<Instant>,
}

#[derive(Default)]
struct State {
    staged: BTreeMap<ChunkKey, Staged>,
    queue: VecDeque<Chunk>,
    /// Staged + queued + in flight.
    total: u64,
    closed: bool,
    /// The buffer is dropped: the timer thread ends.
    dropped: bool,
}

struct Shared {
    name: String,
    settings: BufferSettings,
    state: Mutex<State>,
    /// Space was freed.
    space: Notify,
    /// A chunk was queued (or the buffer closed).
    data: Notify,
    /// Wakes the timer thread: a new staged chunk, a shorter queue, close or drop.
    timer: Condvar,
    counters: BufferCounters,
}

/// The memory buffer; shared between the output's `emit` and its flush workers.
pub struct MemoryBuffer {
    shared: Arc<Shared>,
    timer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MemoryBuffer {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().dropped = true;
        self.shared.timer.notify_all();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

impl MemoryBuffer {
    /// The buffer, with its timer thread when chunks can become due (`flush_mode interval`
    /// or a `time` chunk key).
    pub fn new(name: impl Into<String>, settings: BufferSettings) -> Self {
        let name = name.into();
        let needs_timer =
            settings.flush_mode == FlushMode::Interval || settings.chunking.time.is_some();
        let shared = Arc::new(Shared {
            name: name.clone(),
            settings,
            state: Mutex::new(State::default()),
            space: Notify::new(),
            data: Notify::new(),
            timer: Condvar::new(),
            counters: BufferCounters::default(),
        });
        let timer = needs_timer.then(|| {
            let sh = shared.clone();
            std::thread::Builder::new()
                .name(format!("buffer-timer-{name}"))
                .spawn(move || sh.run_timer())
                .expect("spawn the buffer timer thread")
        });
        Self { shared, timer }
    }

    pub fn settings(&self) -> &BufferSettings {
        &self.shared.settings
    }

    /// Bytes held (staged, queued and in flight).
    pub fn total_bytes(&self) -> u64 {
        self.shared.state.lock().unwrap().total
    }

    /// Gauges and counters.
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

    /// Appends `batch`; resolves once the buffer holds it (see the module docs for overflow).
    pub async fn push(&self, batch: EventBatch) -> Result<(), EmitError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sh = &self.shared;
        let records = batch.len() as u64;
        // What the fits check reserves; each part then counts its own bytes.
        let bytes = batch_bytes(&batch);
        let mut memory = MemoryBudget::global()
            .reserve_held(batch_memory(&batch))
            .await;
        let mut parts = Some(sh.settings.chunking.split(batch));
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
                let fits = st.total == 0 || st.total + bytes <= sh.settings.total_limit_size;
                if fits {
                    sh.counters
                        .pushed_records
                        .fetch_add(records, Ordering::Relaxed);
                    let parts = parts.take().expect("appended once");
                    let one = matches!(parts, Split::One(_));
                    for (key, part) in parts {
                        let n = if one { bytes } else { batch_bytes(&part) };
                        // Each chunk holds its part's share of the memory reservation.
                        let share = if one {
                            std::mem::take(&mut memory)
                        } else {
                            memory.split_off(batch_memory(&part))
                        };
                        sh.append(&mut st, key, part, n, share);
                    }
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
                            sh.counters.dropped_chunks.fetch_add(1, Ordering::Relaxed);
                            sh.counters
                                .dropped_records
                                .fetch_add(old.records, Ordering::Relaxed);
                            tracing::warn!(output = %sh.name, records = old.records, "buffer full: dropped the oldest chunk (overflow_action drop_oldest_chunk)");
                            continue;
                        }
                        // Nothing queued to drop (all in flight): wait like `block`.
                    }
                    OverflowAction::Block => {}
                }
            }
            notified.await;
        }
    }

    /// Waits for the next queued chunk to deliver. `None` once closed and (with
    /// `flush_at_shutdown`) drained, staged chunks included.
    pub async fn take(&self) -> Option<Chunk> {
        let sh = &self.shared;
        loop {
            let notified = sh.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = sh.state.lock().unwrap();
                if let Some(c) = st.queue.pop_front() {
                    if !st.queue.is_empty() {
                        sh.data.notify_one();
                    }
                    // A due chunk may have waited for room in the queue.
                    sh.timer.notify_one();
                    return Some(c);
                }
                if st.closed {
                    if !sh.settings.flush_at_shutdown {
                        return None;
                    }
                    let first = st.staged.keys().next().cloned();
                    return first.and_then(|k| st.staged.remove(&k)).map(|s| s.chunk);
                }
            }
            notified.await;
        }
    }

    /// Marks `chunk` as done (delivered or dead-lettered): frees its bytes.
    pub fn release(&self, chunk: &Chunk) {
        let mut st = self.shared.state.lock().unwrap();
        st.total = st.total.saturating_sub(chunk.bytes);
        drop(st);
        self.shared.space.notify_waiters();
    }

    /// Stops accepting; [`take`](Self::take) then hands out what is left (with
    /// `flush_at_shutdown`) and returns `None`.
    pub fn close(&self) {
        self.shared.state.lock().unwrap().closed = true;
        self.shared.data.notify_waiters();
        self.shared.space.notify_waiters();
        self.shared.timer.notify_all();
    }
}

impl Shared {
    fn append(
        &self,
        st: &mut State,
        key: ChunkKey,
        batch: EventBatch,
        bytes: u64,
        memory: Reservation,
    ) {
        st.total += bytes;
        let s = &self.settings;
        let staged = st.staged.entry(key.clone()).or_insert_with(|| {
            self.timer.notify_one();
            Staged {
                chunk: Chunk::default(),
                due: s.due_at(&key, Instant::now()),
            }
        });
        staged.chunk.push(batch, bytes);
        staged.chunk.memory.absorb(memory);
        if staged.chunk.bytes >= s.chunk_limit_size
            || staged.chunk.records >= s.chunk_limit_records
            || s.flush_mode == FlushMode::Immediate
        {
            let full = st.staged.remove(&key).expect("staged above");
            st.queue.push_back(full.chunk);
            self.data.notify_one();
        }
    }

    /// The timer thread: queues staged chunks once they are due (oldest due first), at most
    /// `queued_chunks_limit` in the queue; sleeps until the next due time or a wake-up.
    fn run_timer(&self) {
        let mut st = self.state.lock().unwrap();
        loop {
            if st.dropped || st.closed {
                return;
            }
            let now = Instant::now();
            let mut due: Vec<(Instant, ChunkKey)> = st
                .staged
                .iter()
                .filter_map(|(k, s)| s.due.map(|d| (d, k.clone())))
                .collect();
            due.sort();
            let mut next = None;
            for (at, key) in due {
                if at > now {
                    next = Some(at);
                    break;
                }
                if st.queue.len() >= self.settings.queued_chunks_limit {
                    // Woken by `take` when the queue gets shorter.
                    break;
                }
                let s = st.staged.remove(&key).expect("listed above");
                st.queue.push_back(s.chunk);
                self.data.notify_one();
            }
            st = match next {
                Some(at) => {
                    self.timer
                        .wait_timeout(st, at.saturating_duration_since(now))
                        .unwrap()
                        .0
                }
                None => self.timer.wait(st).unwrap(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::chunk_key::{Chunking, SliceZone, TimeSlicing};
    use crate::event::{Event, EventTime};
    use bytes::Bytes;
    use std::time::Duration;

    fn batch(n: usize) -> EventBatch {
        EventBatch::new(
            "t",
            (0..n)
                .map(|_| Event::new(EventTime::new(1, 0), Bytes::from_static(&[0x80])))
                .collect(),
        )
    }

    /// Waits until `cond` holds (panics after 5 s).
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn records_limit_enqueues_and_the_timer_queues_by_age() {
        let b = MemoryBuffer::new(
            "t",
            BufferSettings {
                chunk_limit_records: 3,
                flush_interval: Duration::from_millis(50),
                ..Default::default()
            },
        );
        b.push(batch(3)).await.unwrap();
        let t0 = Instant::now();
        b.push(batch(1)).await.unwrap();
        let c = b.take().await.unwrap();
        assert_eq!(c.records, 3, "full by chunk_limit_records");
        // The staged chunk is queued by the timer (no worker waits meanwhile).
        until("queued by age", || b.stats().queue_length == 1).await;
        assert!(t0.elapsed() >= Duration::from_millis(50));
        let c2 = b.take().await.unwrap();
        assert_eq!(c2.records, 1);
        b.release(&c);
        b.release(&c2);
        assert_eq!(b.total_bytes(), 0);
        b.close();
        assert!(b.take().await.is_none());
    }

    #[tokio::test]
    async fn metadata_is_kept_as_pushed() {
        let b = MemoryBuffer::new("t", BufferSettings::default());
        let with = EventBatch::new(
            "t",
            vec![Event::with_metadata(
                EventTime::new(1, 2),
                Bytes::from_static(&[0x80]),
                Some(Bytes::from_static(&[0x81, 0xa1, b'k', 0x01])),
            )],
        );
        b.push(with.clone()).await.unwrap();
        b.close();
        let c = b.take().await.unwrap();
        assert_eq!(c.batches, vec![with]);
    }

    #[tokio::test]
    async fn time_slices_make_one_chunk_each_and_wait_for_the_slice_end() {
        let b = MemoryBuffer::new(
            "t",
            BufferSettings {
                flush_mode: FlushMode::Lazy,
                chunking: Chunking {
                    by_tag: false,
                    time: Some(TimeSlicing {
                        timekey: 3600,
                        wait: Duration::ZERO,
                        zone: SliceZone::Fixed(0),
                    }),
                },
                queued_chunks_limit: 10,
                ..Default::default()
            },
        );
        let ev = |secs| Event::new(EventTime::new(secs, 0), Bytes::from_static(&[0x80]));
        // two old hours (due at once), then the current hour (due at its end)
        let now = EventTime::now().secs;
        b.push(EventBatch::new("t", vec![ev(7200), ev(3600), ev(7201)]))
            .await
            .unwrap();
        b.push(EventBatch::new("t", vec![ev(now)])).await.unwrap();
        until("both old slices queued", || b.stats().queue_length == 2).await;
        let first = b.take().await.unwrap();
        let second = b.take().await.unwrap();
        let secs = |c: &Chunk| -> Vec<i64> {
            c.batches
                .iter()
                .flat_map(|b| b.events.iter().map(|e| e.time.secs))
                .collect()
        };
        let mut got = vec![secs(&first), secs(&second)];
        got.sort();
        assert_eq!(got, vec![vec![3600], vec![7200, 7201]]);
        // the current hour stays staged (lazy, its slice is not over) until shutdown
        assert_eq!(b.stats().queue_length, 0);
        b.close();
        let last = b.take().await.unwrap();
        assert_eq!(secs(&last), vec![now]);
        assert!(b.take().await.is_none());
    }

    #[tokio::test]
    async fn queued_chunks_limit_keeps_due_chunks_staged() {
        let b = MemoryBuffer::new(
            "t",
            BufferSettings {
                flush_interval: Duration::from_millis(20),
                queued_chunks_limit: 1,
                chunking: Chunking {
                    by_tag: true,
                    time: None,
                },
                ..Default::default()
            },
        );
        let tagged = |t: &str| {
            EventBatch::new(
                t,
                vec![Event::new(
                    EventTime::new(1, 0),
                    Bytes::from_static(&[0x80]),
                )],
            )
        };
        b.push(tagged("a")).await.unwrap();
        b.push(tagged("b")).await.unwrap();
        until("one chunk queued", || b.stats().queue_length == 1).await;
        // "b" is due too, but the queue is full: it stays staged and keeps taking events
        b.push(tagged("b")).await.unwrap();
        let a = b.take().await.unwrap();
        assert_eq!(&*a.batches[0].tag, "a");
        until("b queued once there is room", || {
            b.stats().queue_length == 1
        })
        .await;
        let bb = b.take().await.unwrap();
        assert_eq!((&*bb.batches[0].tag, bb.records), ("b", 2));
    }

    #[tokio::test]
    async fn overflow_actions() {
        let one = batch_bytes(&batch(1));
        let s = BufferSettings {
            chunk_limit_records: 1,
            total_limit_size: one * 2,
            ..Default::default()
        };
        let b = MemoryBuffer::new("t", s.clone());
        b.push(batch(1)).await.unwrap();
        b.push(batch(1)).await.unwrap();
        assert!(matches!(
            b.push(batch(1)).await,
            Err(EmitError::BufferOverflow { .. })
        ));

        let b = MemoryBuffer::new(
            "t",
            BufferSettings {
                overflow_action: OverflowAction::DropOldestChunk,
                ..s.clone()
            },
        );
        for _ in 0..3 {
            b.push(batch(1)).await.unwrap();
        }
        assert_eq!(b.stats().dropped_chunks, 1);

        let b = Arc::new(MemoryBuffer::new(
            "t",
            BufferSettings {
                overflow_action: OverflowAction::Block,
                ..s
            },
        ));
        b.push(batch(1)).await.unwrap();
        b.push(batch(1)).await.unwrap();
        let b2 = b.clone();
        let blocked = tokio::spawn(async move { b2.push(batch(1)).await });
        // The push found the buffer full (counted) and waits.
        until("the third push hit the limit", || b.stats().overflows == 1).await;
        assert!(!blocked.is_finished(), "push must wait for space");
        let c = b.take().await.unwrap();
        b.release(&c);
        tokio::time::timeout(Duration::from_secs(2), blocked)
            .await
            .expect("push resumes once space is freed")
            .unwrap()
            .unwrap();
    }
}
