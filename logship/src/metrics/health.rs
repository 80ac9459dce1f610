//! `/healthz`: is this logship doing its job?
//!
//! Healthy (`200 {"status":"ok"}`) unless one of these holds, in which case the answer is
//! `503 {"status":"failing","reasons":[...]}`:
//!
//! 1. **An input is not listening**: a source's socket is not bound, or its server stopped.
//! 2. **An output is failing**: it holds data (its buffer is not empty), it has had failed
//!    requests, and not one request succeeded for `health_failing_after` (default 60 s) since
//!    the first of those failures. Progress is sampled once a second by [`HealthTracker`], so
//!    the timing is exact to about a second. An output that recovers is healthy at the first
//!    successful request.
//! 3. **A buffer is nearly full**: it holds more than 90 % of its `total_limit_size`
//!    (inputs will soon be slowed down or refused, per `overflow_action`).
//!
//! The check reads counters only (no I/O), so probing it often costs nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::plugin::OutputStats;

/// Share of `total_limit_size` above which a buffer makes `/healthz` fail.
pub const BUFFER_FULL_RATIO: f64 = 0.9;

#[derive(Debug, Clone, Copy)]
struct Progress {
    ok: u64,
    failed: u64,
    /// Since when requests have failed without a success in between.
    failing_since: Option<Instant>,
}

/// Remembers, per output, since when its requests have only failed.
#[derive(Debug, Default)]
pub struct HealthTracker {
    state: Mutex<HashMap<String, Progress>>,
}

impl HealthTracker {
    /// Records the counters of output `id` as read now.
    pub fn observe(&self, id: &str, s: &OutputStats, now: Instant) {
        let (Some(req), Some(failed)) = (s.requests, s.failed_requests) else {
            return;
        };
        let ok = req.saturating_sub(failed);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let p = st.entry(id.to_string()).or_insert(Progress {
            ok,
            failed: 0,
            failing_since: None,
        });
        if ok > p.ok {
            p.failing_since = None;
        } else if failed > p.failed && p.failing_since.is_none() {
            p.failing_since = Some(now);
        }
        p.ok = ok;
        p.failed = failed;
    }

    /// Why output `id` is failing at `now` (requests failing for `failing_after` or more),
    /// or `None`.
    pub fn output_problem(
        &self,
        id: &str,
        s: &OutputStats,
        now: Instant,
        failing_after: Duration,
    ) -> Option<String> {
        if let Some(b) = &s.buffer {
            if b.limit_bytes > 0 && b.total_bytes as f64 > BUFFER_FULL_RATIO * b.limit_bytes as f64
            {
                return Some(format!(
                    "output {id}: buffer holds {} of {} bytes (over {}%)",
                    b.total_bytes,
                    b.limit_bytes,
                    (BUFFER_FULL_RATIO * 100.0) as u32
                ));
            }
        }
        let holds_data = s.buffer.is_none_or(|b| b.total_bytes > 0);
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let since = st.get(id)?.failing_since?;
        let failing_for = now.saturating_duration_since(since);
        (holds_data && failing_for >= failing_after).then(|| {
            format!(
                "output {id}: every request has failed for {}s",
                failing_for.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::plugin::BufferGauges;

    fn stats(req: u64, failed: u64, held: u64) -> OutputStats {
        OutputStats {
            requests: Some(req),
            failed_requests: Some(failed),
            buffer: Some(BufferGauges {
                total_bytes: held,
                limit_bytes: 1000,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn failing_only_after_the_timeout_and_healthy_again_after_a_success() {
        let h = HealthTracker::default();
        let t0 = Instant::now();
        h.observe("es", &stats(5, 0, 10), t0);
        assert!(h.output_problem("es", &stats(5, 0, 10), t0, T).is_none());
        h.observe("es", &stats(6, 1, 10), t0 + Duration::from_secs(1));
        h.observe("es", &stats(9, 4, 10), t0 + Duration::from_secs(5));
        assert!(h
            .output_problem("es", &stats(9, 4, 10), t0 + Duration::from_secs(10), T)
            .is_none());
        let p = h.output_problem("es", &stats(9, 4, 10), t0 + Duration::from_secs(11), T);
        assert_eq!(
            p.as_deref(),
            Some("output es: every request has failed for 10s")
        );
        // Nothing held: nothing at stake.
        assert!(h
            .output_problem("es", &stats(9, 4, 0), t0 + Duration::from_secs(11), T)
            .is_none());
        // A success clears it.
        h.observe("es", &stats(10, 4, 10), t0 + Duration::from_secs(12));
        assert!(h
            .output_problem("es", &stats(10, 4, 10), t0 + Duration::from_secs(30), T)
            .is_none());
    }

    #[test]
    fn a_nearly_full_buffer_is_a_problem() {
        let h = HealthTracker::default();
        let now = Instant::now();
        assert!(h.output_problem("es", &stats(0, 0, 900), now, T).is_none());
        assert!(h
            .output_problem("es", &stats(0, 0, 901), now, T)
            .unwrap()
            .contains("buffer holds 901 of 1000 bytes"));
    }
}
