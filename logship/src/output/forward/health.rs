//! Failure detection: is a server available for the next chunk?
//!
//! A server starts **up**. It goes **down** at once when a send to it fails (connect, TLS or
//! Forward handshake, write, `send_timeout`, `ack_response_timeout`, a wrong ack), or after
//! [`HEARTBEAT_FAILURES`] heartbeats in a row fail. This is a plain consecutive-failure
//! detector, not Fluentd's φ accrual one (`phi_threshold` and `hard_timeout` are accepted and
//! ignored): on a LAN a refused or timed-out probe is decisive, and a flapping link is
//! damped by `recover_wait` instead.
//!
//! A down server comes back **up** once heartbeats have succeeded without a break for
//! `recover_wait`. With `heartbeat_type none` there are no heartbeats: a down server becomes a
//! candidate again `recover_wait` after its last failure, and the next chunk is the probe
//! (success → up; failure → down for another `recover_wait`).
//!
//! Heartbeats (every `heartbeat_interval`, each waiting at most `max(heartbeat_interval, 1s)`):
//! - `tcp` and `transport` (the default): a TCP connection to the server's port is opened and
//!   closed (no TLS or Forward handshake);
//! - `udp`: one NUL byte to the server's port; the server's reply (in_forward answers every
//!   heartbeat datagram) is the success. A connection refused (ICMP) or no reply in time is a
//!   failure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Heartbeats in a row that must fail before a server is marked down.
pub const HEARTBEAT_FAILURES: u32 = 3;

/// `heartbeat_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatType {
    Tcp,
    Udp,
    None,
}

impl HeartbeatType {
    /// From the config value (`transport` means tcp here).
    pub fn parse(s: &str) -> Self {
        match s {
            "udp" => Self::Udp,
            "none" => Self::None,
            _ => Self::Tcp,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// When the server was last marked down (`None` while up).
    down_since: Option<Instant>,
    /// Start of the current run of successful heartbeats while down.
    ok_since: Option<Instant>,
    /// Failed heartbeats in a row.
    failures: u32,
}

/// The availability of one server.
#[derive(Debug)]
pub struct Health {
    name: String,
    kind: HeartbeatType,
    recover_wait: Duration,
    up: AtomicBool,
    state: Mutex<State>,
    /// Times this server went down.
    pub went_down: AtomicU64,
    /// Times this server came back up.
    pub came_up: AtomicU64,
}

impl Health {
    pub fn new(name: String, kind: HeartbeatType, recover_wait: Duration) -> Self {
        Self {
            name,
            kind,
            recover_wait,
            up: AtomicBool::new(true),
            state: Mutex::new(State::default()),
            went_down: AtomicU64::new(0),
            came_up: AtomicU64::new(0),
        }
    }

    /// Up (as last decided).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// May take the next chunk: up, or (without heartbeats) down for `recover_wait`.
    pub fn is_available(&self) -> bool {
        if self.is_up() {
            return true;
        }
        self.kind == HeartbeatType::None
            && self
                .state
                .lock()
                .unwrap()
                .down_since
                .is_none_or(|t| t.elapsed() >= self.recover_wait)
    }

    fn mark_down(&self, st: &mut State, why: &str) {
        st.down_since = Some(Instant::now());
        st.ok_since = None;
        if self.up.swap(false, Ordering::AcqRel) {
            self.went_down.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(server = %self.name, reason = why, "forward server marked down");
        }
    }

    fn mark_up(&self, st: &mut State) {
        st.down_since = None;
        st.ok_since = None;
        st.failures = 0;
        if !self.up.swap(true, Ordering::AcqRel) {
            self.came_up.fetch_add(1, Ordering::Relaxed);
            tracing::info!(server = %self.name, "forward server is up again");
        }
    }

    /// A send failed: down now.
    pub fn send_failed(&self, why: &str) {
        let mut st = self.state.lock().unwrap();
        self.mark_down(&mut st, why);
    }

    /// A send succeeded (brings a probed server back when there are no heartbeats).
    pub fn send_ok(&self) {
        if !self.is_up() && self.kind == HeartbeatType::None {
            let mut st = self.state.lock().unwrap();
            self.mark_up(&mut st);
        }
    }

    /// Records one heartbeat result.
    pub fn heartbeat(&self, ok: bool) {
        let mut st = self.state.lock().unwrap();
        if ok {
            st.failures = 0;
            if !self.is_up() {
                let since = *st.ok_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.recover_wait {
                    self.mark_up(&mut st);
                }
            }
        } else {
            st.failures += 1;
            st.ok_since = None;
            if st.failures >= HEARTBEAT_FAILURES && self.is_up() {
                self.mark_down(&mut st, "heartbeats failed");
            }
        }
    }
}

/// One heartbeat probe of `addr` (`host:port`).
pub async fn probe(kind: HeartbeatType, addr: &str, timeout: Duration) -> bool {
    let fut = async {
        match kind {
            HeartbeatType::Tcp => tokio::net::TcpStream::connect(addr).await.is_ok(),
            HeartbeatType::Udp => {
                let Ok(addrs) = tokio::net::lookup_host(addr).await else {
                    return false;
                };
                let Some(target) = addrs.into_iter().next() else {
                    return false;
                };
                let local = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let Ok(sock) = tokio::net::UdpSocket::bind(local).await else {
                    return false;
                };
                if sock.connect(target).await.is_err() || sock.send(&[0]).await.is_err() {
                    return false;
                }
                let mut buf = [0u8; 16];
                sock.recv(&mut buf).await.is_ok()
            }
            HeartbeatType::None => true,
        }
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or(false)
}

/// Probes `addr` every `interval` until `stop`, feeding `health`.
pub async fn heartbeat_loop(
    health: std::sync::Arc<Health>,
    kind: HeartbeatType,
    addr: String,
    interval: Duration,
    stop: CancellationToken,
) {
    if kind == HeartbeatType::None {
        return;
    }
    let timeout = interval.max(Duration::from_secs(1));
    loop {
        let ok = tokio::select! {
            ok = probe(kind, &addr, timeout) => ok,
            _ = stop.cancelled() => return,
        };
        health.heartbeat(ok);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_consecutive_failures_up_after_recover_wait() {
        let h = Health::new("s".into(), HeartbeatType::Tcp, Duration::ZERO);
        h.heartbeat(false);
        h.heartbeat(false);
        h.heartbeat(true); // the run is broken
        h.heartbeat(false);
        h.heartbeat(false);
        assert!(h.is_up());
        h.heartbeat(false);
        assert!(!h.is_up() && !h.is_available());
        h.heartbeat(true);
        assert!(h.is_up());
        h.send_failed("test");
        assert!(!h.is_available());
    }

    #[test]
    fn recover_wait_holds_a_server_down() {
        let h = Health::new("s".into(), HeartbeatType::Tcp, Duration::from_secs(3600));
        h.send_failed("test");
        h.heartbeat(true);
        h.heartbeat(true);
        assert!(!h.is_up());
        let n = Health::new("n".into(), HeartbeatType::None, Duration::ZERO);
        n.send_failed("test");
        assert!(!n.is_up() && n.is_available());
        n.send_ok();
        assert!(n.is_up());
    }
}
