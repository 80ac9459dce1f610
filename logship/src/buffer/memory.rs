//! The memory buffer (`<buffer>` with `@type memory`): chunks live in RAM only, so an
//! unflushed chunk is lost if the process dies (`kill -9`, OOM); an orderly shutdown delivers
//! it (`flush_at_shutdown` defaults to true here).
//!
//! Batches are appended to the **staged** chunk; a chunk is **enqueued** once it reaches
//! `chunk_limit_size` bytes or `chunk_limit_records` events, or when it is older than
//! `flush_interval`. Flush workers [`take`](MemoryBuffer::take) enqueued chunks and call
//! [`release`](MemoryBuffer::release) once a chunk is delivered (or dead-lettered): the bytes
//! of a chunk count against `total_limit_size` until then, in flight included.
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

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{
    batch_bytes, BufferCounters, BufferSettings, BufferStats, Chunk, FlushMode, OverflowAction,
};
use crate::event::{EmitError, EventBatch};
use crate::memory_budget::{batch_memory, MemoryBudget, Reservation};

#[derive(Default)]
struct State {
    staged: Chunk,
    queue: VecDeque<Chunk>,
    /// Staged + queued + in flight.
    total: u64,
    closed: bool,
}

/// The memory buffer; shared between the output's `emit` and its flush workers.
pub struct MemoryBuffer {
    name: String,
    settings: BufferSettings,
    state: Mutex<State>,
    space: Notify,
    data: Notify,
    pub counters: BufferCounters,
}

impl MemoryBuffer {
    pub fn new(name: impl Into<String>, settings: BufferSettings) -> Self {
        Self {
            name: name.into(),
            settings,
            state: Mutex::new(State::default()),
            space: Notify::new(),
            data: Notify::new(),
            counters: BufferCounters::default(),
        }
    }

    pub fn settings(&self) -> &BufferSettings {
        &self.settings
    }

    /// Bytes held (staged, queued and in flight).
    pub fn total_bytes(&self) -> u64 {
        self.state.lock().unwrap().total
    }

    /// Gauges and counters.
    pub fn stats(&self) -> BufferStats {
        let (q, qb, t) = {
            let st = self.state.lock().unwrap();
            (
                st.queue.len() as u64,
                st.queue.iter().map(|c| c.bytes).sum(),
                st.total,
            )
        };
        self.counters.snapshot(q, qb, t)
    }

    /// Appends `batch`; resolves once the buffer holds it (see the module docs for overflow).
    pub async fn push(&self, batch: EventBatch) -> Result<(), EmitError> {
        if batch.is_empty() {
            return Ok(());
        }
        let bytes = batch_bytes(&batch);
        let mut memory = Some(
            MemoryBudget::global()
                .reserve_held(batch_memory(&batch))
                .await,
        );
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state.lock().unwrap();
                if st.closed {
                    return Err(EmitError::ShuttingDown);
                }
                // A batch larger than the whole buffer is accepted into an empty buffer.
                let fits = st.total == 0 || st.total + bytes <= self.settings.total_limit_size;
                if fits {
                    self.counters
                        .pushed_records
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.append(&mut st, batch, bytes, memory.take().unwrap_or_default());
                    return Ok(());
                }
                self.counters.overflows.fetch_add(1, Ordering::Relaxed);
                match self.settings.overflow_action {
                    OverflowAction::ThrowException => {
                        return Err(EmitError::BufferOverflow {
                            output: self.name.clone(),
                            reason: format!(
                                "total_limit_size {} bytes reached ({} held)",
                                self.settings.total_limit_size, st.total
                            ),
                        })
                    }
                    OverflowAction::DropOldestChunk => {
                        if let Some(old) = st.queue.pop_front() {
                            st.total -= old.bytes;
                            self.counters.dropped_chunks.fetch_add(1, Ordering::Relaxed);
                            self.counters
                                .dropped_records
                                .fetch_add(old.records, Ordering::Relaxed);
                            tracing::warn!(output = %self.name, records = old.records, "buffer full: dropped the oldest chunk (overflow_action drop_oldest_chunk)");
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

    fn append(&self, st: &mut State, batch: EventBatch, bytes: u64, memory: Reservation) {
        st.total += bytes;
        let first = st.staged.created.is_none();
        st.staged.push(batch, bytes);
        st.staged.memory.absorb(memory);
        if st.staged.bytes >= self.settings.chunk_limit_size
            || st.staged.records >= self.settings.chunk_limit_records
            || self.settings.flush_mode == FlushMode::Immediate
        {
            let c = std::mem::take(&mut st.staged);
            st.queue.push_back(c);
            self.data.notify_one();
        } else if first {
            // Wake a worker so that it starts the flush_interval clock of the new chunk.
            self.data.notify_one();
        }
    }

    /// Waits for the next chunk to deliver: an enqueued one, or the staged one once it is
    /// `flush_interval` old. `None` once closed and drained.
    pub async fn take(&self) -> Option<Chunk> {
        loop {
            let notified = self.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut st = self.state.lock().unwrap();
                if let Some(c) = st.queue.pop_front() {
                    if !st.queue.is_empty() {
                        self.data.notify_one();
                    }
                    return Some(c);
                }
                let lazy = self.settings.flush_mode == FlushMode::Lazy;
                match st.staged.created {
                    Some(_) if st.closed && self.settings.flush_at_shutdown => {
                        return Some(std::mem::take(&mut st.staged));
                    }
                    Some(_) if st.closed => return None,
                    Some(t) if !lazy && t.elapsed() >= self.settings.flush_interval => {
                        return Some(std::mem::take(&mut st.staged));
                    }
                    Some(t) if !lazy => Some(self.settings.flush_interval - t.elapsed()),
                    Some(_) => None,
                    None if st.closed => return None,
                    None => None,
                }
            };
            match wait {
                Some(d) => {
                    let _ = tokio::time::timeout(d, notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// Marks `chunk` as done (delivered or dead-lettered): frees its bytes.
    pub fn release(&self, chunk: &Chunk) {
        let mut st = self.state.lock().unwrap();
        st.total = st.total.saturating_sub(chunk.bytes);
        drop(st);
        self.space.notify_waiters();
    }

    /// Stops accepting; [`take`](Self::take) then hands out what is left and returns `None`.
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.data.notify_waiters();
        self.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventTime};
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn batch(n: usize) -> EventBatch {
        EventBatch::new(
            "t",
            (0..n)
                .map(|_| Event::new(EventTime::new(1, 0), Bytes::from_static(&[0x80])))
                .collect(),
        )
    }

    #[tokio::test]
    async fn records_limit_enqueues_and_interval_flushes_staged() {
        let b = MemoryBuffer::new(
            "t",
            BufferSettings {
                chunk_limit_records: 3,
                flush_interval: Duration::from_millis(50),
                ..Default::default()
            },
        );
        b.push(batch(3)).await.unwrap();
        b.push(batch(1)).await.unwrap();
        let c = b.take().await.unwrap();
        assert_eq!(c.records, 3);
        let t0 = Instant::now();
        let c2 = b.take().await.unwrap();
        // a worker already waiting when the first batch arrives flushes it after the interval
        let b = Arc::new(b);
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            let c = b2.take().await.unwrap();
            b2.release(&c);
            c.records
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        b.push(batch(2)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), waiter).await;
        assert_eq!(got.expect("flushed after flush_interval").unwrap(), 2);
        assert_eq!(c2.records, 1);
        assert!(t0.elapsed() >= Duration::from_millis(30));
        b.release(&c);
        b.release(&c2);
        assert_eq!(b.total_bytes(), 0);
        b.close();
        assert!(b.take().await.is_none());
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
        tokio::time::sleep(Duration::from_millis(50)).await;
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
