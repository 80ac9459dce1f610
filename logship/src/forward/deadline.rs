//! How long a Forward connection may take over one frame (slow-loris protection).
//!
//! A frame's clock starts with its first byte (with `<security>`, the PING's clock starts when
//! the HELO is sent). Then:
//!
//! - the **first frame** of a connection (the PING with `<security>`) must be complete within
//!   `handshake_timeout` (default 5 s): a client that has not proven to speak the protocol gets
//!   no more than that;
//! - **every later frame** must be complete within `read_timeout` (default 30 s), and after the
//!   first `handshake_timeout` it must keep arriving at `min_receive_rate` bytes per second on
//!   average since its first byte (default 1 KiB/s): a 32 MiB frame over a slow link passes, a
//!   client dribbling a byte a second does not.
//!
//! A connection that has sent nothing since its last frame is idle, not late: it is only closed
//! by `idle_timeout` (if set) or evicted when the connection cap is reached (see
//! [`super::admission`]). Time the server spends not reading (waiting for the pipeline or the
//! memory budget) is not held against the client: [`FrameClock::credit`] moves the clock.

use std::time::Duration;

use tokio::time::Instant;

/// The limits of [`FrameClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Deadline of the first frame (or PING), from its first byte (or the HELO).
    pub handshake_timeout: Duration,
    /// Deadline of any later frame, from its first byte.
    pub read_timeout: Duration,
    /// Least average rate of a frame in progress, after `handshake_timeout`; 0 disables it.
    pub min_receive_rate: u64,
}

/// Which deadline a frame missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The first frame (or PING) was not complete within `handshake_timeout`.
    FirstFrame,
    /// A frame was not complete within `read_timeout`.
    ReadTimeout,
    /// A frame arrived slower than `min_receive_rate`.
    MinRate,
}

impl Missed {
    /// How the log line says it.
    pub fn describe(self) -> &'static str {
        match self {
            Missed::FirstFrame => "first frame not complete within handshake_timeout",
            Missed::ReadTimeout => "frame not complete within read_timeout",
            Missed::MinRate => "frame arriving slower than min_receive_rate",
        }
    }
}

/// The clock of the frame in progress on one connection.
#[derive(Debug, Clone)]
pub struct FrameClock {
    limits: FrameLimits,
    /// When the frame in progress started (`None`: no frame in progress).
    started: Option<Instant>,
    /// Bytes of the frame in progress received so far.
    bytes: u64,
    /// True until the connection's first frame is complete.
    first: bool,
}

impl FrameClock {
    /// The clock of a new connection.
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            limits,
            started: None,
            bytes: 0,
            first: true,
        }
    }

    /// Starts the first frame's clock now even though no byte arrived (the server sent HELO
    /// and waits for the PING).
    pub fn start_now(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// `n` bytes of a frame arrived at `now` (`pending` bytes, this read's included, are
    /// buffered and not yet a complete frame).
    pub fn received(&mut self, now: Instant, n: usize, pending: usize) {
        if pending == 0 {
            return;
        }
        match self.started {
            None => {
                self.started = Some(now);
                self.bytes = pending as u64;
            }
            Some(_) => self.bytes += n.min(pending) as u64,
        }
    }

    /// A frame completed; `pending` bytes of the next one are already buffered.
    pub fn frame_completed(&mut self, now: Instant, pending: usize) {
        self.first = false;
        self.started = (pending > 0).then_some(now);
        self.bytes = pending as u64;
    }

    /// The server did not read for `waited` (its own backpressure): the client is not late
    /// for that time.
    pub fn credit(&mut self, waited: Duration) {
        if let Some(s) = &mut self.started {
            *s += waited;
        }
    }

    /// True while a frame (or the handshake) is in progress.
    pub fn in_progress(&self) -> bool {
        self.started.is_some()
    }

    /// When the frame in progress must be complete, and which limit that is.
    pub fn deadline(&self) -> Option<(Instant, Missed)> {
        let start = self.started?;
        let l = &self.limits;
        if self.first {
            return Some((start + l.handshake_timeout, Missed::FirstFrame));
        }
        let hard = start + l.read_timeout;
        if l.min_receive_rate == 0 {
            return Some((hard, Missed::ReadTimeout));
        }
        // The bytes so far keep the average at the minimum rate until this long after start.
        let earned = Duration::from_secs_f64(self.bytes as f64 / l.min_receive_rate as f64);
        let by_rate = start + earned.max(l.handshake_timeout);
        Some(if by_rate < hard {
            (by_rate, Missed::MinRate)
        } else {
            (hard, Missed::ReadTimeout)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        handshake_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(30),
        min_receive_rate: 1024,
    };

    #[test]
    fn the_first_frame_gets_the_handshake_timeout() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(LIMITS);
        assert_eq!(c.deadline(), None, "idle is not late");
        c.received(t0, 1, 1);
        assert_eq!(
            c.deadline(),
            Some((t0 + LIMITS.handshake_timeout, Missed::FirstFrame))
        );
        // more bytes do not buy the first frame more time
        c.received(t0 + Duration::from_secs(4), 1_000_000, 1_000_001);
        assert_eq!(c.deadline().unwrap().1, Missed::FirstFrame);
        c.frame_completed(t0 + Duration::from_secs(4), 0);
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn later_frames_need_the_minimum_rate_after_the_grace() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(LIMITS);
        c.received(t0, 10, 10);
        c.frame_completed(t0, 0);
        // a dribbler: 5 bytes in its first 5 seconds
        c.received(t0, 1, 1);
        c.received(t0 + Duration::from_secs(4), 4, 5);
        assert_eq!(
            c.deadline(),
            Some((t0 + LIMITS.handshake_timeout, Missed::MinRate))
        );
        // a large frame at 100 KiB/s: the rate deadline moves ahead, read_timeout caps it
        let mut c = FrameClock::new(LIMITS);
        c.frame_completed(t0, 0);
        c.received(t0, 100 * 1024, 100 * 1024);
        assert_eq!(
            c.deadline(),
            Some((t0 + LIMITS.read_timeout, Missed::ReadTimeout))
        );
        // the next frame's bytes already buffered start its clock
        c.frame_completed(t0 + Duration::from_secs(1), 3);
        assert_eq!(c.deadline().unwrap().0, t0 + Duration::from_secs(6));
    }

    #[test]
    fn time_the_server_did_not_read_is_credited() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(LIMITS);
        c.received(t0, 1, 1);
        c.credit(Duration::from_secs(7));
        assert_eq!(c.deadline().unwrap().0, t0 + Duration::from_secs(12));
    }
}
