//! One memory budget for the whole process (`<system> memory_budget`, default 256 MiB).
//!
//! Everything that holds event data on behalf of a client counts against one number:
//!
//! - the receive buffer of every Forward connection, including a partially received frame
//!   ([`crate::forward::recv_buffer`]);
//! - the decompressed window of a `CompressedPackedForward` frame being split
//!   ([`crate::forward::inflate`]);
//! - the events a memory buffer holds until its output delivered them
//!   ([`crate::buffer::memory`]).
//!
//! Memory is taken as a [`Reservation`] and given back when the reservation is dropped. A
//! reservation that does not fit **waits** until others are given back ([`MemoryBudget::reserve`]):
//! a Forward connection then stops reading its socket, and TCP pushes back on the client — the
//! process does not allocate past the budget to find out later that it should not have. A single
//! request larger than the whole budget can never fit and is refused
//! ([`OverBudget`]); the Forward input refuses such a frame with a WARN and a metric.
//!
//! Memory **held** until an output delivers it (the memory buffers, [`MemoryBudget::reserve_held`])
//! may fill the budget only up to three quarters: the last quarter stays for the inputs' receive
//! buffers and inflate windows. Without it, an output that cannot deliver would fill the whole
//! budget, and every client — also one whose events go elsewhere — would wait for its next
//! frame that does not fit in the first small buffer.
//!
//! Two kinds of memory are counted without waiting ([`MemoryBudget::force`]): the first small
//! receive buffer of a connection (so that a client sending small frames is always read, even
//! while a flood of large frames has used up the budget), and requests larger than the budget
//! that were already allocated (a memory buffer taking a batch that exists). The budget can
//! therefore be exceeded by these, and only by these.
//!
//! The accounting is of the bytes each holder asked for, not of the allocator's pages: a record
//! kept by a memory buffer may keep its whole receive buffer alive, and the allocator keeps
//! freed memory for reuse. Peak RSS stays within the budget plus a bounded overhead (the tests
//! allow 64 MiB), not exactly at it.
//!
//! There is one budget per process: `logship run` sets its limit from `<system>` with
//! [`MemoryBudget::global`]`().set_limit(..)`. Until then (library use, unit tests) the global
//! budget is unlimited. A Forward server can be given its own budget (tests do).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use crate::event::{Event, EventBatch};

/// The default `<system> memory_budget`: sized for a small container.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 * 1024 * 1024;

/// A request that can never fit: it is larger than the whole budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{requested} bytes exceed the whole memory budget of {limit} bytes")]
pub struct OverBudget {
    /// Bytes asked for.
    pub requested: u64,
    /// The budget's limit.
    pub limit: u64,
}

/// A byte budget shared by every holder of event data (see the module docs).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: AtomicU64,
    used: AtomicU64,
    /// Tasks waiting in [`MemoryBudget::reserve`]; releases notify only when there are some.
    waiters: AtomicUsize,
    released: Notify,
    /// Reservations that had to wait (a counter, for `/metrics`).
    waits: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicU64::new(limit.max(1)),
            used: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            released: Notify::new(),
            waits: AtomicU64::new(0),
        })
    }

    /// A budget that never makes anybody wait.
    pub fn unlimited() -> Arc<Self> {
        Self::new(u64::MAX)
    }

    /// The process-wide budget (unlimited until `logship run` sets its limit).
    pub fn global() -> &'static Arc<MemoryBudget> {
        static GLOBAL: OnceLock<Arc<MemoryBudget>> = OnceLock::new();
        GLOBAL.get_or_init(MemoryBudget::unlimited)
    }

    /// Changes the limit (start-up, from `<system> memory_budget`).
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
        self.wake();
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// How many reservations have had to wait so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// The part of the budget that memory held for outputs may fill (three quarters).
    pub fn held_limit(&self) -> u64 {
        let limit = self.limit();
        limit - limit / 4
    }

    /// Reserves `bytes` if they fit now.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        self.try_reserve_below(bytes, self.limit())
    }

    fn try_reserve_below(self: &Arc<Self>, bytes: u64, limit: u64) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(bytes)?;
            if next > limit {
                return None;
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.reservation(bytes)),
                Err(now) => used = now,
            }
        }
    }

    /// Reserves `bytes`, waiting until they fit. Fails at once when they never can.
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, OverBudget> {
        self.reserve_below(bytes, Self::limit).await
    }

    /// Reserves `bytes` of memory held until an output delivers it: waits until they fit in
    /// [`MemoryBudget::held_limit`]; a request larger than that is forced (the memory exists
    /// already and has to go somewhere).
    pub async fn reserve_held(self: &Arc<Self>, bytes: u64) -> Reservation {
        match self.reserve_below(bytes, Self::held_limit).await {
            Ok(r) => r,
            Err(_) => self.force(bytes),
        }
    }

    async fn reserve_below(
        self: &Arc<Self>,
        bytes: u64,
        threshold: fn(&Self) -> u64,
    ) -> Result<Reservation, OverBudget> {
        if let Some(r) = self.try_reserve_below(bytes, threshold(self)) {
            return Ok(r);
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let _waiting = WaiterGuard::new(&self.waiters);
        loop {
            let limit = threshold(self);
            if bytes > limit {
                return Err(OverBudget {
                    requested: bytes,
                    limit,
                });
            }
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release between the check and the await
            // is not missed.
            released.as_mut().enable();
            if let Some(r) = self.try_reserve_below(bytes, limit) {
                return Ok(r);
            }
            released.await;
        }
    }

    /// Reserves `bytes` whether or not they fit (memory that must be counted but cannot wait;
    /// see the module docs).
    pub fn force(self: &Arc<Self>, bytes: u64) -> Reservation {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        self.reservation(bytes)
    }

    fn reservation(self: &Arc<Self>, bytes: u64) -> Reservation {
        Reservation {
            budget: Some(self.clone()),
            bytes,
        }
    }

    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.wake();
    }

    fn wake(&self) {
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.released.notify_waiters();
        }
    }
}

/// The memory a batch holds: its records and metadata, and each event's own size (for small
/// records the `Event` itself is a good part of it).
pub fn batch_memory(batch: &EventBatch) -> u64 {
    let per_event = std::mem::size_of::<Event>() as u64;
    batch
        .events
        .iter()
        .map(|e| e.record.len() as u64 + e.metadata.as_ref().map_or(0, |m| m.len() as u64))
        .sum::<u64>()
        + per_event * batch.events.len() as u64
        + batch.tag.len() as u64
}

/// Counts a waiting task for as long as it waits (also when its future is dropped).
struct WaiterGuard<'a>(&'a AtomicUsize);

impl<'a> WaiterGuard<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::AcqRel);
        Self(c)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Bytes taken from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<Arc<MemoryBudget>>,
    bytes: u64,
}

impl Reservation {
    /// An empty reservation (holds nothing).
    pub fn none() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Takes over `other`'s bytes (both must come from the same budget, or `self` be empty).
    pub fn absorb(&mut self, mut other: Reservation) {
        match (&self.budget, other.budget.take()) {
            (_, None) => {}
            (None, Some(b)) => {
                self.budget = Some(b);
                self.bytes = other.bytes;
            }
            (Some(a), Some(b)) => {
                if Arc::ptr_eq(a, &b) {
                    self.bytes += other.bytes;
                } else {
                    // Different budgets: give the other one back where it came from.
                    b.release(other.bytes);
                }
            }
        }
        other.bytes = 0;
    }

    /// Splits up to `bytes` off into a reservation of their own (the rest stays here).
    pub fn split_off(&mut self, bytes: u64) -> Reservation {
        let n = bytes.min(self.bytes);
        self.bytes -= n;
        Reservation {
            budget: self.budget.clone(),
            bytes: n,
        }
    }

    /// Gives everything back now.
    pub fn release(&mut self) {
        if let Some(b) = &self.budget {
            b.release(std::mem::take(&mut self.bytes));
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reservations_are_given_back_on_drop() {
        let b = MemoryBudget::new(100);
        let r1 = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(41).is_none());
        let r2 = b.try_reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(r1);
        assert_eq!(b.used(), 40);
        let mut r3 = b.force(200);
        assert_eq!(b.used(), 240);
        r3.absorb(r2);
        assert_eq!(r3.bytes(), 240);
        let part = r3.split_off(100);
        assert_eq!((part.bytes(), r3.bytes()), (100, 140));
        drop(r3);
        assert_eq!(b.used(), 100);
        drop(part);
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn a_reservation_that_does_not_fit_waits_for_a_release() {
        let b = MemoryBudget::new(100);
        let held = b.try_reserve(80).unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.reserve(50).await.map(|r| r.bytes()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "50 bytes cannot fit while 80 of 100 are held"
        );
        assert_eq!(b.waits(), 1);
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the release")
            .unwrap();
        assert_eq!(got, Ok(50));
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_is_refused_at_once() {
        let b = MemoryBudget::new(100);
        assert_eq!(
            b.reserve(101).await.unwrap_err(),
            OverBudget {
                requested: 101,
                limit: 100
            }
        );
        let r = b.reserve_held(101).await;
        assert_eq!((r.bytes(), b.used()), (101, 101));
    }

    #[tokio::test]
    async fn memory_held_for_outputs_leaves_a_quarter_to_the_inputs() {
        let b = MemoryBudget::new(100);
        let held = b.reserve_held(70).await;
        // 6 more would pass 75: a held reservation waits ...
        let r = tokio::time::timeout(Duration::from_millis(20), b.reserve_held(6)).await;
        assert!(r.is_err());
        // ... while an input still gets the last quarter
        let input = b.try_reserve(30).unwrap();
        assert_eq!(b.used(), 100);
        drop((held, input));
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_waiter_behind() {
        let b = MemoryBudget::new(10);
        let _held = b.try_reserve(10).unwrap();
        let r = tokio::time::timeout(Duration::from_millis(20), b.reserve(5)).await;
        assert!(r.is_err());
        assert_eq!(b.waiters.load(Ordering::Relaxed), 0);
    }
}
