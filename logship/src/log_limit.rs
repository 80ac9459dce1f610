//! Rate-limited warnings (and errors) for problems that can happen once per event, per
//! connection or per retry.
//!
//! A producer that sends 50,000 unparsable lines, or a scanner that opens thousands of
//! connections, must not turn logship's own log into a flood (which, shipped back into the
//! cluster, floods it too). Such warnings go through a [`LogLimiter`]: within each interval the
//! first `burst` occurrences are logged in full, with their example; later ones are only counted,
//! and the next line logged after the interval says how many were suppressed in between
//! (field `suppressed`). Metrics still count every occurrence: the limiter only decides what is
//! written to the log.
//!
//! ```
//! use std::time::Duration;
//! use logship::log_limit::LogLimiter;
//!
//! static UNPARSABLE: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
//! # let (tag, example) = ("docker.api", "not json");
//! logship::warn_limited!(UNPARSABLE, %tag, example, "record is not valid JSON");
//! ```
//!
//! The summary is written lazily, with the next occurrence after the interval: a burst that
//! ends is summed up by the next one, and the metric holds the exact total meanwhile.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Decides which occurrences of one kind of warning are logged (see the module docs).
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Start of the current interval; `None` before the first occurrence.
    window_start: Option<Instant>,
    /// Occurrences logged in the current interval.
    logged: u32,
    /// Occurrences not logged since the last logged one.
    suppressed: u64,
}

impl LogLimiter {
    /// Logs at most `burst` occurrences per `interval` (at least one).
    pub const fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst: if burst == 0 { 1 } else { burst },
            interval,
            state: Mutex::new(State {
                window_start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Records one occurrence. `Some(n)`: log it, saying that `n` occurrences were suppressed
    /// since the previous logged one; `None`: do not log it.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = s
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if expired {
            s.window_start = Some(now);
            s.logged = 0;
        }
        if s.logged < self.burst {
            s.logged += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

/// `tracing::warn!` through a [`LogLimiter`]: logged only when the limiter admits it, with a
/// `suppressed` field when earlier occurrences were not logged.
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $($arg:tt)+) => {
        $crate::log_limited!(::tracing::Level::WARN, $limiter, $($arg)+)
    };
}

/// `tracing::error!` through a [`LogLimiter`], as [`warn_limited!`]: for a failure that
/// repeats with every retry (an output that cannot deliver until its configuration is fixed).
#[macro_export]
macro_rules! error_limited {
    ($limiter:expr, $($arg:tt)+) => {
        $crate::log_limited!(::tracing::Level::ERROR, $limiter, $($arg)+)
    };
}

/// `tracing::event!` at `level` through a [`LogLimiter`] (what [`warn_limited!`] and
/// [`error_limited!`] expand to).
#[macro_export]
macro_rules! log_limited {
    ($level:expr, $limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.admit() {
            if suppressed > 0 {
                ::tracing::event!($level, suppressed, $($arg)+);
            } else {
                ::tracing::event!($level, $($arg)+);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_line_per_interval_with_the_count() {
        let l = LogLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // the first three are logged, the next 997 counted
        let first: Vec<Option<u64>> = (0..1000).map(|_| l.admit_at(at(0))).collect();
        assert_eq!(&first[..3], &[Some(0), Some(0), Some(0)]);
        assert!(first[3..].iter().all(Option::is_none));
        // still inside the interval: suppressed
        assert_eq!(l.admit_at(at(9)), None);
        // the interval is over: the next one is logged with the count of what was suppressed
        assert_eq!(l.admit_at(at(10)), Some(998));
        assert_eq!(l.admit_at(at(10)), Some(0));
        assert_eq!(l.admit_at(at(11)), Some(0));
        assert_eq!(l.admit_at(at(11)), None);
        assert_eq!(l.admit_at(at(25)), Some(1));
    }

    #[test]
    fn a_zero_burst_still_logs_one_per_interval() {
        let l = LogLimiter::new(0, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(l.admit_at(t0), Some(0));
        assert_eq!(l.admit_at(t0), None);
        assert_eq!(l.admit_at(t0 + Duration::from_secs(1)), Some(1));
    }
}
