//! The receive buffer of one Forward connection, sized under the process memory budget
//! ([`crate::memory_budget`]).
//!
//! A connection starts with a small buffer ([`MIN_READ`]) that is always granted, so a client
//! that sends small frames is read even when the budget is used up. The read size adapts: it
//! doubles while reads fill the buffer (up to [`MAX_READ`]) and halves while they use less
//! than a quarter of it; a large buffer of a connection that went quiet is given back.
//!
//! A frame that is larger than the buffer gets an allocation of its own size once its header
//! says how large it is, and that allocation **waits** for the budget: while it waits the
//! socket is not read, so TCP holds the client back. A frame larger than the whole budget can
//! never be received and is refused ([`OverBudget`]).
//!
//! The budget counts each allocation while the connection owns it. Frames split off the buffer
//! keep its allocation alive until their events are dropped; events held by a memory buffer
//! are counted there.

use std::sync::Arc;

use bytes::BytesMut;

use crate::memory_budget::{MemoryBudget, OverBudget, Reservation};

/// The first (and smallest) buffer of a connection; granted without waiting.
pub const MIN_READ: usize = 4 * 1024;
/// The largest read size the buffer grows to for a busy connection.
pub const MAX_READ: usize = 64 * 1024;

/// A connection's receive buffer (see the module docs).
#[derive(Debug)]
pub struct RecvBuffer {
    buf: BytesMut,
    /// The budget's share for `buf`'s allocation.
    memory: Reservation,
    /// Size of `buf`'s allocation.
    alloc: usize,
    /// Bytes to make room for before the next read (adapts, see the module docs).
    read_size: usize,
    budget: Arc<MemoryBudget>,
}

impl RecvBuffer {
    /// An empty buffer; nothing is allocated before the first [`RecvBuffer::make_room`].
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        Self {
            buf: BytesMut::new(),
            memory: Reservation::none(),
            alloc: 0,
            read_size: MIN_READ,
            budget,
        }
    }

    /// The bytes received and not yet consumed.
    pub fn bytes(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received and not yet consumed.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes the budget counts for this buffer now.
    pub fn reserved(&self) -> u64 {
        self.memory.bytes()
    }

    /// Makes room for the next read without waiting, when there is room or the budget has it
    /// now. `frame_needs` is the total size the frame in progress is known to need (from its
    /// headers). `Err(size)`: an allocation of `size` bytes has to wait for the budget
    /// ([`RecvBuffer::wait_for_room`]).
    pub fn try_make_room(&mut self, frame_needs: Option<usize>) -> Result<(), usize> {
        let len = self.buf.len();
        let spare = self.buf.capacity() - len;
        // The least that lets the read make progress, and what the read would like.
        let need = frame_needs.unwrap_or(0).max(len + 1);
        let want = need.max(len + self.read_size);
        if spare >= want - len || self.buf.try_reclaim(want - len) {
            return Ok(());
        }
        if let Some(r) = self.grow_reservation(want) {
            self.replace(want, r);
            return Ok(());
        }
        if spare >= need - len || self.buf.try_reclaim(need - len) {
            return Ok(());
        }
        let size = need.max(len + MIN_READ);
        if len == 0 && size <= MIN_READ {
            let r = self.budget.force(size as u64);
            self.replace(size, r);
            return Ok(());
        }
        Err(size)
    }

    /// Waits until the budget has `size` bytes (from [`RecvBuffer::try_make_room`]) and moves
    /// the buffer into an allocation of that size. Fails when `size` exceeds the whole budget.
    pub async fn wait_for_room(&mut self, size: usize) -> Result<(), OverBudget> {
        let r = self.budget.reserve(size as u64).await?;
        self.replace(size, r);
        Ok(())
    }

    /// [`RecvBuffer::try_make_room`], waiting when it has to (`Ok(true)` then, so the caller
    /// knows that time passed without reading).
    pub async fn make_room(&mut self, frame_needs: Option<usize>) -> Result<bool, OverBudget> {
        match self.try_make_room(frame_needs) {
            Ok(()) => Ok(false),
            Err(size) => self.wait_for_room(size).await.map(|()| true),
        }
    }

    fn grow_reservation(&self, size: usize) -> Option<Reservation> {
        if size <= MIN_READ && self.buf.is_empty() {
            return Some(self.budget.force(size as u64));
        }
        self.budget.try_reserve(size as u64)
    }

    /// Moves the unconsumed bytes into a new allocation of `size` bytes held by `memory`.
    fn replace(&mut self, size: usize, memory: Reservation) {
        let mut next = BytesMut::with_capacity(size);
        next.extend_from_slice(&self.buf);
        self.buf = next;
        self.alloc = size;
        self.memory = memory;
    }

    /// Adapts the read size: `n` bytes arrived where `room` could have.
    pub fn after_read(&mut self, n: usize, room: usize) {
        if n >= room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        } else if n < room / 4 {
            self.read_size = (self.read_size / 2).max(MIN_READ);
        }
    }

    /// Spare room for the next read.
    pub fn room(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Gives a large allocation back once the connection has gone quiet (nothing buffered and
    /// reads much smaller than the allocation).
    pub fn shrink_if_quiet(&mut self) {
        if self.buf.is_empty() && self.alloc > 4 * self.read_size.max(MIN_READ) {
            self.buf = BytesMut::new();
            self.alloc = 0;
            self.memory = Reservation::none();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn starts_small_grows_for_a_frame_and_shrinks_when_quiet() {
        let budget = MemoryBudget::new(1 << 20);
        let mut b = RecvBuffer::new(budget.clone());
        assert_eq!(budget.used(), 0);
        assert!(!b.make_room(None).await.unwrap());
        assert_eq!(budget.used(), MIN_READ as u64);
        // a frame header saying 100 KB: one allocation of that size
        b.bytes().extend_from_slice(&[1, 2, 3]);
        assert!(!b.make_room(Some(100_000)).await.unwrap());
        assert!(b.room() >= 100_000 - 3);
        assert_eq!(budget.used(), 100_000);
        assert_eq!(&b.bytes()[..], &[1, 2, 3]);
        // consumed, quiet: given back
        b.bytes().clear();
        b.after_read(10, 100_000);
        b.shrink_if_quiet();
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_frame_waits_for_the_budget_and_a_small_read_does_not() {
        let budget = MemoryBudget::new(64 * 1024);
        let hog = budget.try_reserve(60 * 1024).unwrap();
        // a new connection still gets its first small buffer
        let mut small = RecvBuffer::new(budget.clone());
        assert!(!small.make_room(None).await.unwrap());
        // a 32 KB frame does not fit: it waits until the hog is given back
        let mut big = RecvBuffer::new(budget.clone());
        big.bytes().extend_from_slice(&[0xc6]);
        let waiting =
            tokio::time::timeout(Duration::from_millis(50), big.make_room(Some(32 * 1024))).await;
        assert!(waiting.is_err(), "the frame must wait for the budget");
        drop(hog);
        tokio::time::timeout(Duration::from_secs(5), big.make_room(Some(32 * 1024)))
            .await
            .expect("room once the budget has it")
            .unwrap();
        assert!(big.room() >= 32 * 1024 - 1);
        // larger than the whole budget: refused
        let mut huge = RecvBuffer::new(budget.clone());
        huge.bytes().extend_from_slice(&[0xc6]);
        assert!(huge.make_room(Some(1 << 20)).await.is_err());
    }

    #[test]
    fn the_read_size_adapts() {
        let mut b = RecvBuffer::new(MemoryBudget::unlimited());
        for _ in 0..10 {
            b.after_read(b.read_size, b.read_size);
        }
        assert_eq!(b.read_size, MAX_READ);
        for _ in 0..10 {
            b.after_read(1, b.read_size);
        }
        assert_eq!(b.read_size, MIN_READ);
    }
}
