//! Which connections a Forward server keeps: the connection cap and eviction.
//!
//! A server holds at most `max_connections` connections (by default derived from the
//! process's open-file limit, see [`default_max_connections`]). Each one has a [`Slot`] in
//! the [`Admission`] table, which records when it was accepted and when it last completed a
//! frame. When a new connection arrives and the table is full:
//!
//! 1. the **stalest non-delivering** connection is evicted to make room: first the connection
//!    accepted longest ago among those that never completed a frame (idle since connect, or a
//!    slow-loris trickling its first frame), then the connection whose last complete frame is
//!    the oldest among those that delivered nothing for [`ACTIVE_WINDOW`]. A connection that
//!    completed a frame within [`ACTIVE_WINDOW`], or that is waiting for the pipeline to take
//!    its events, is **never** evicted;
//! 2. the new connection is admitted once the evicted one has closed. When nothing can be
//!    evicted it waits until a connection closes (and later ones wait in the kernel's accept
//!    backlog).
//!
//! Each time the table is full counts `connection_cap_reached`, each eviction
//! `connections_evicted` (see [`super::server::ForwardMetrics`]); both are logged as
//! rate-limited WARN lines naming the peer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A connection that completed a frame this recently is active and is never evicted.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(10);

/// File descriptors kept back from connections for everything else the process opens
/// (buffer files, outputs' connections, the monitoring server): a tenth of the limit, at least
/// this many.
pub const FD_RESERVE_MIN: u64 = 256;

/// The connection cap that a process with an open-file limit of `nofile` can hold:
/// `nofile` minus a reserve of a tenth (at least [`FD_RESERVE_MIN`]), at least 16.
pub fn max_connections_for_fd_limit(nofile: u64) -> usize {
    let reserve = (nofile / 10).max(FD_RESERVE_MIN);
    nofile.saturating_sub(reserve).max(16) as usize
}

/// The default connection cap, from the process's current open-file limit (soft).
pub fn default_max_connections() -> usize {
    match rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        Some(n) => max_connections_for_fd_limit(n),
        None => max_connections_for_fd_limit(1 << 20),
    }
}

/// One admitted connection, as the table sees it.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    /// The peer, for log lines (`ip:port`, or `unix`).
    pub peer: String,
    accepted: Instant,
    /// Milliseconds after `accepted` of the last completed frame, plus one; 0 = none yet.
    last_frame: AtomicU64,
    /// True while the connection waits for the pipeline (or the memory budget) on its own
    /// events: it is busy, not stale.
    busy: AtomicBool,
    evict: CancellationToken,
}

impl Slot {
    /// Records a frame completed at `now`.
    pub fn frame_completed(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.accepted).as_millis() as u64 + 1;
        self.last_frame.store(ms, Ordering::Relaxed);
    }

    /// Marks the connection as waiting on the server's side (pipeline or memory budget).
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// Resolves when the connection has been chosen for eviction.
    pub async fn evicted(&self) {
        self.evict.cancelled().await
    }

    /// True once the connection has been chosen for eviction.
    pub fn is_evicted(&self) -> bool {
        self.evict.is_cancelled()
    }

    /// When the last frame completed (`None`: never).
    fn last_frame_at(&self) -> Option<Instant> {
        match self.last_frame.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.accepted + Duration::from_millis(ms - 1)),
        }
    }
}

/// Why a connection was chosen for eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// It never completed a frame, since it was accepted this long ago.
    NeverDelivered(Duration),
    /// Its last complete frame is this old.
    Idle(Duration),
}

/// A connection chosen for eviction.
#[derive(Debug, Clone)]
pub struct Eviction {
    /// The evicted connection's peer.
    pub peer: String,
    /// Why it was the stalest.
    pub staleness: Staleness,
}

/// The table of a server's connections (see the module docs).
#[derive(Debug)]
pub struct Admission {
    cap: usize,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    /// Notified when a connection leaves the table.
    left: Notify,
}

impl Admission {
    /// A table for at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            left: Notify::new(),
        })
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections in the table now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no connection is admitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer` if the table has room.
    pub fn try_admit(self: &Arc<Self>, peer: String) -> Option<Ticket> {
        let mut slots = self.lock();
        if slots.len() >= self.cap {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            peer,
            accepted: Instant::now(),
            last_frame: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            evict: CancellationToken::new(),
        });
        slots.insert(id, slot.clone());
        Some(Ticket {
            admission: self.clone(),
            slot,
        })
    }

    /// Chooses the stalest non-delivering connection (see the module docs), tells it to close
    /// and returns it; `None` when every connection is active (or already being evicted).
    pub fn evict_stalest(&self) -> Option<Eviction> {
        let now = Instant::now();
        let slots = self.lock();
        // (tier, age): tier 0 = never delivered, 1 = idle; larger age = staler.
        let mut best: Option<(&Arc<Slot>, u8, Duration)> = None;
        for s in slots.values() {
            if s.is_evicted() || s.busy.load(Ordering::Relaxed) {
                continue;
            }
            let (tier, age) = match s.last_frame_at() {
                None => (0u8, now.saturating_duration_since(s.accepted)),
                Some(t) => {
                    let idle = now.saturating_duration_since(t);
                    if idle < ACTIVE_WINDOW {
                        continue;
                    }
                    (1, idle)
                }
            };
            let better = match best {
                None => true,
                Some((_, bt, bage)) => tier < bt || (tier == bt && age > bage),
            };
            if better {
                best = Some((s, tier, age));
            }
        }
        let (slot, tier, age) = best?;
        slot.evict.cancel();
        Some(Eviction {
            peer: slot.peer.clone(),
            staleness: if tier == 0 {
                Staleness::NeverDelivered(age)
            } else {
                Staleness::Idle(age)
            },
        })
    }

    /// Resolves after some connection has left the table (call it with the table full).
    pub async fn wait_for_room(&self) {
        let left = self.left.notified();
        tokio::pin!(left);
        left.as_mut().enable();
        if self.len() < self.cap {
            return;
        }
        left.await;
    }

    fn leave(&self, id: u64) {
        self.lock().remove(&id);
        self.left.notify_waiters();
    }
}

/// A connection's place in the table; leaving it (drop) frees the slot.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    slot: Arc<Slot>,
}

impl Ticket {
    /// The connection's slot.
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.leave(self.slot.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_the_fd_limit() {
        assert_eq!(max_connections_for_fd_limit(20_000), 18_000);
        assert_eq!(max_connections_for_fd_limit(1024), 768);
        assert_eq!(max_connections_for_fd_limit(100), 16);
        assert_eq!(max_connections_for_fd_limit(1 << 20), 943_719);
    }

    #[test]
    fn eviction_takes_the_oldest_never_delivering_then_the_longest_idle() {
        let a = Admission::new(4);
        let first = a.try_admit("first".into()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = a.try_admit("second".into()).unwrap();
        let active = a.try_admit("active".into()).unwrap();
        active.slot().frame_completed(Instant::now());
        let busy = a.try_admit("busy".into()).unwrap();
        busy.slot().set_busy(true);
        assert!(a.try_admit("fifth".into()).is_none(), "full");

        let e = a.evict_stalest().unwrap();
        assert_eq!(e.peer, "first");
        assert!(matches!(e.staleness, Staleness::NeverDelivered(_)));
        assert!(first.slot().is_evicted());
        // the evicted one is not chosen again while it closes
        assert_eq!(a.evict_stalest().unwrap().peer, "second");
        // the active and the busy connection are never evicted
        assert!(a.evict_stalest().is_none());
        assert!(!active.slot().is_evicted() && !busy.slot().is_evicted());
        drop((first, second));
        assert_eq!(a.len(), 2);
        assert!(a.try_admit("new".into()).is_some());
    }

    #[test]
    fn a_connection_idle_past_the_active_window_is_evictable() {
        let a = Admission::new(1);
        let t = a.try_admit("quiet".into()).unwrap();
        // a frame completed ACTIVE_WINDOW + 1 s ago
        let ms = 1;
        t.slot().last_frame.store(ms, Ordering::Relaxed);
        let slot = t.slot();
        let backdated = Slot {
            id: 99,
            peer: "backdated".into(),
            accepted: Instant::now() - ACTIVE_WINDOW - Duration::from_secs(1),
            last_frame: AtomicU64::new(1),
            busy: AtomicBool::new(false),
            evict: CancellationToken::new(),
        };
        a.lock().insert(99, Arc::new(backdated));
        let e = a.evict_stalest().unwrap();
        assert_eq!(e.peer, "backdated");
        assert!(matches!(e.staleness, Staleness::Idle(d) if d >= ACTIVE_WINDOW));
        assert!(!slot.is_evicted(), "active within the window");
    }

    #[tokio::test]
    async fn waiting_for_room_resolves_when_a_connection_leaves() {
        let a = Admission::new(1);
        let t = a.try_admit("x".into()).unwrap();
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.wait_for_room().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(t);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
