//! Chunk keys (`<buffer tag, time>`): which staged chunk an event goes to, and when a staged
//! chunk is due for delivery.
//!
//! Fluentd keeps one staged chunk per *chunk key*: with `tag` the events of each tag get their
//! own chunks; with `time` (and `timekey`) the events of each **time slice** do. A slice is
//! `timekey` seconds long and starts at a multiple of `timekey` in the slice's time zone —
//! local time by default (so `timekey 1d` slices start at local midnight), UTC with
//! `timekey_use_utc true`, or the fixed offset of `timekey_zone`. An event belongs to the slice
//! of its own time (the time the client gave it), not of its arrival.
//!
//! A staged chunk is **due** (queued for delivery without being full):
//! - with `flush_mode interval`: `flush_interval` after its first event arrived;
//! - with a `time` key, whatever the flush mode: once the wall clock passes the end of its
//!   slice plus `timekey_wait` (Fluentd's flush of a time slice). A late event, whose slice
//!   ended long ago, makes a chunk that is due at once;
//! - with `flush_mode lazy` and no `time` key: never (only when full, or at shutdown).
//!
//! `flush_mode` left at `default` means `lazy` with a `time` key and `interval` without one
//! (Fluentd's rule): `<buffer tag, time>` with `timekey 1h` and no `flush_mode` delivers each
//! hour at its end plus `timekey_wait`, not when 8 MiB have accumulated.
//!
//! Record-field chunk keys (`<buffer $.kubernetes.namespace_name>`) are accepted with a notice
//! that they have no effect: logship resolves placeholders per event.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::event::{EventBatch, EventTime};

/// The zone in which time slices are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceZone {
    /// The host's local time (Fluentd's default), daylight saving included.
    Local,
    /// A fixed offset from UTC in seconds (`timekey_use_utc` is `Fixed(0)`).
    Fixed(i32),
}

impl SliceZone {
    fn offset_at(self, secs: i64) -> i64 {
        match self {
            SliceZone::Fixed(o) => i64::from(o),
            SliceZone::Local => {
                use chrono::{Offset, TimeZone};
                match chrono::Local.timestamp_opt(secs, 0) {
                    chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                        i64::from(t.offset().fix().local_minus_utc())
                    }
                    chrono::LocalResult::None => 0,
                }
            }
        }
    }
}

/// `timekey`, `timekey_wait` and the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSlicing {
    /// Slice length in whole seconds (at least 1).
    pub timekey: i64,
    pub wait: Duration,
    pub zone: SliceZone,
}

impl TimeSlicing {
    /// The start (Unix seconds) of the slice that holds `t`.
    pub fn slice_of(&self, t: EventTime) -> i64 {
        let off = self.zone.offset_at(t.secs);
        t.secs - (t.secs + off).rem_euclid(self.timekey)
    }

    /// The wall-clock second at which the chunk of slice `start` is due.
    pub fn due_secs(&self, start: i64) -> i64 {
        start
            .saturating_add(self.timekey)
            .saturating_add(self.wait.as_secs() as i64)
    }
}

/// The key of a staged chunk: the tag (with a `tag` chunk key) and the slice start (with
/// `time`). Ordered by slice, then tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkKey {
    pub timekey: Option<i64>,
    pub tag: Option<Arc<str>>,
}

/// The parts of a batch, by chunk key (see [`Chunking::split`]).
pub enum Split {
    One(Option<(ChunkKey, EventBatch)>),
    Many(std::vec::IntoIter<(ChunkKey, EventBatch)>),
}

impl Iterator for Split {
    type Item = (ChunkKey, EventBatch);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Split::One(part) => part.take(),
            Split::Many(parts) => parts.next(),
        }
    }
}

/// How a buffer splits pushed batches into staged chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunking {
    pub by_tag: bool,
    pub time: Option<TimeSlicing>,
}

impl Chunking {
    /// `batch` cut into parts of events with the same key, in order of first appearance. One
    /// part, the batch itself, when nothing splits it (the common case: no keys, or every
    /// event in one slice) — without allocating.
    pub fn split(&self, batch: EventBatch) -> Split {
        let tag = self.by_tag.then(|| batch.tag.clone());
        let Some(ts) = &self.time else {
            return Split::One(Some((ChunkKey { timekey: None, tag }, batch)));
        };
        let first = batch.events.first().map(|e| ts.slice_of(e.time));
        if batch
            .events
            .iter()
            .all(|e| Some(ts.slice_of(e.time)) == first)
        {
            return Split::One(Some((
                ChunkKey {
                    timekey: first,
                    tag,
                },
                batch,
            )));
        }
        let mut parts: Vec<(ChunkKey, EventBatch)> = Vec::new();
        for e in batch.events {
            let k = Some(ts.slice_of(e.time));
            match parts.iter_mut().find(|(key, _)| key.timekey == k) {
                Some((_, b)) => b.events.push(e),
                None => parts.push((
                    ChunkKey {
                        timekey: k,
                        tag: tag.clone(),
                    },
                    EventBatch {
                        tag: batch.tag.clone(),
                        events: vec![e],
                    },
                )),
            }
        }
        Split::Many(parts.into_iter())
    }

    /// When a staged chunk of `key`, created at `created`, is due (see the module docs);
    /// `None`: only when full or at shutdown.
    pub fn due_at(
        &self,
        key: &ChunkKey,
        created: Instant,
        interval: Option<Duration>,
    ) -> Option<Instant> {
        let by_age = interval.map(|i| created + i);
        let by_slice = match (&self.time, key.timekey) {
            (Some(ts), Some(start)) => {
                let now_wall = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                let left = (ts.due_secs(start) as f64 - now_wall).max(0.0);
                Some(Instant::now() + Duration::from_secs_f64(left))
            }
            _ => None,
        };
        match (by_age, by_slice) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use bytes::Bytes;

    fn ev(secs: i64) -> Event {
        Event::new(EventTime::new(secs, 7), Bytes::from_static(&[0x80]))
    }

    #[test]
    fn slices_follow_the_zone() {
        let utc = TimeSlicing {
            timekey: 86400,
            wait: Duration::from_secs(600),
            zone: SliceZone::Fixed(0),
        };
        // 2026-01-02T03:04:05Z
        let t = EventTime::new(1_767_323_045, 0);
        assert_eq!(utc.slice_of(t), 1_767_312_000);
        assert_eq!(utc.due_secs(1_767_312_000), 1_767_312_000 + 86400 + 600);
        // +09:00: local midnight of 2026-01-02 is 2026-01-01T15:00Z
        let tokyo = TimeSlicing {
            zone: SliceZone::Fixed(9 * 3600),
            ..utc
        };
        assert_eq!(tokyo.slice_of(t), 1_767_312_000 - 9 * 3600);
        // before the epoch too
        let hour = TimeSlicing {
            timekey: 3600,
            ..utc
        };
        assert_eq!(hour.slice_of(EventTime::new(-1, 0)), -3600);
    }

    #[test]
    fn split_by_slice_and_tag_keeps_order() {
        let c = Chunking {
            by_tag: true,
            time: Some(TimeSlicing {
                timekey: 10,
                wait: Duration::ZERO,
                zone: SliceZone::Fixed(0),
            }),
        };
        let b = EventBatch::new("a.b", vec![ev(100), ev(105), ev(111), ev(109), ev(120)]);
        let parts: Vec<_> = c.split(b).collect();
        let got: Vec<(Option<i64>, Vec<i64>)> = parts
            .iter()
            .map(|(k, b)| {
                assert_eq!(k.tag.as_deref(), Some("a.b"));
                (k.timekey, b.events.iter().map(|e| e.time.secs).collect())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(100), vec![100, 105, 109]),
                (Some(110), vec![111]),
                (Some(120), vec![120]),
            ]
        );
        // one slice: the batch is not cut
        let one = c.split(EventBatch::new("t", vec![ev(100), ev(101)]));
        assert!(matches!(one, Split::One(_)));
        // no keys: one part with the empty key
        let none: Vec<_> = Chunking::default()
            .split(EventBatch::new("t", vec![ev(1), ev(99)]))
            .collect();
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].0, ChunkKey::default());
    }

    #[test]
    fn due_times() {
        let now = Instant::now();
        let lazy = Chunking::default();
        assert_eq!(lazy.due_at(&ChunkKey::default(), now, None), None);
        assert_eq!(
            lazy.due_at(&ChunkKey::default(), now, Some(Duration::from_secs(5))),
            Some(now + Duration::from_secs(5))
        );
        let c = Chunking {
            by_tag: false,
            time: Some(TimeSlicing {
                timekey: 2,
                wait: Duration::from_secs(1),
                zone: SliceZone::Fixed(0),
            }),
        };
        // a slice that ended long ago is due at once
        let old = c
            .due_at(
                &ChunkKey {
                    timekey: Some(0),
                    tag: None,
                },
                now,
                None,
            )
            .unwrap();
        assert!(old <= Instant::now());
        // the current slice: due within timekey + wait
        let cur: Vec<_> = c
            .split(EventBatch::new(
                "t",
                vec![Event::new(EventTime::now(), Bytes::new())],
            ))
            .collect();
        let due = c.due_at(&cur[0].0, Instant::now(), None).unwrap();
        let left = due.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::ZERO && left <= Duration::from_secs(3),
            "{left:?}"
        );
    }
}
