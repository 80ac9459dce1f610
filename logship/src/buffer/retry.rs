//! How a buffered output waits between delivery attempts of a chunk, and when it gives up:
//! the `retry_*` parameters of `<buffer>`, as Fluentd defines them.
//!
//! - `retry_type exponential_backoff` (default): the n-th wait (n = 0, 1, …) is
//!   `retry_wait × retry_exponential_backoff_base^n`, capped at `retry_max_interval`;
//! - `retry_type periodic`: every wait is `retry_wait`;
//! - `retry_randomize true` (default): each wait is moved by up to ±12.5 % at random (Fluentd's
//!   randomize width), so that outputs that failed together do not retry in lockstep;
//!   `false`: the waits are exact;
//! - `retry_timeout` / `retry_max_times` end the retries of a chunk (unless `retry_forever`);
//!   what happens to the chunk then is the output's business (dead letter, counted drop).

use std::time::Duration;

use rand::Rng as _;

use super::config::BufferConfig;

/// Fluentd's `retry_randomize` width: a wait moves by up to this fraction either way.
pub const RANDOMIZE_WIDTH: f64 = 0.125;
/// logship's default `retry_max_interval` (Fluentd has none, so its 17th wait is ~36 h).
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(60);

/// `retry_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryType {
    ExponentialBackoff,
    Periodic,
}

/// The retry parameters of an output's `<buffer>`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub kind: RetryType,
    pub wait: Duration,
    pub backoff_base: f64,
    pub max_interval: Duration,
    pub randomize: bool,
    pub forever: bool,
    pub timeout: Duration,
    pub max_times: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            kind: RetryType::ExponentialBackoff,
            wait: Duration::from_secs(1),
            backoff_base: 2.0,
            max_interval: DEFAULT_MAX_INTERVAL,
            randomize: true,
            forever: false,
            timeout: Duration::from_secs(72 * 3600),
            max_times: None,
        }
    }
}

impl RetryPolicy {
    /// From a `<buffer>` section (the defaults without one).
    pub fn from_config(b: Option<&BufferConfig>) -> Self {
        let Some(b) = b else {
            return Self::default();
        };
        Self {
            kind: if b.retry_type == "periodic" {
                RetryType::Periodic
            } else {
                RetryType::ExponentialBackoff
            },
            wait: b.retry_wait,
            backoff_base: b.retry_exponential_backoff_base,
            max_interval: b.retry_max_interval.unwrap_or(DEFAULT_MAX_INTERVAL),
            randomize: b.retry_randomize,
            forever: b.retry_forever,
            timeout: b.retry_timeout,
            max_times: b.retry_max_times,
        }
    }

    /// The wait before retry number `attempt` (0 for the first retry) without randomization.
    pub fn base_wait(&self, attempt: u32) -> Duration {
        let secs = match self.kind {
            RetryType::Periodic => self.wait.as_secs_f64(),
            RetryType::ExponentialBackoff => {
                let grown =
                    self.wait.as_secs_f64() * self.backoff_base.powi(attempt.min(64) as i32);
                grown.min(self.max_interval.as_secs_f64())
            }
        };
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The wait before retry number `attempt`: [`base_wait`](Self::base_wait), moved by up to
    /// ±[`RANDOMIZE_WIDTH`] with `retry_randomize`; at least 10 ms.
    pub fn wait(&self, attempt: u32) -> Duration {
        let base = self.base_wait(attempt).as_secs_f64();
        let secs = if self.randomize {
            let j = rand::thread_rng().gen_range(-RANDOMIZE_WIDTH..RANDOMIZE_WIDTH);
            base * (1.0 + j)
        } else {
            base
        };
        Duration::from_secs_f64(secs.max(0.01))
    }

    /// True when a chunk first tried at `elapsed` ago, whose next wait is `next_wait`, is past
    /// `retry_timeout` (never with `retry_forever`).
    pub fn past_timeout(&self, elapsed: Duration, next_wait: Duration) -> bool {
        !self.forever && elapsed + next_wait > self.timeout
    }

    /// True when `failures` failed attempts exceed `retry_max_times` (never with
    /// `retry_forever`).
    pub fn past_max_times(&self, failures: u64) -> bool {
        !self.forever && self.max_times.is_some_and(|m| failures > m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(section: &str) -> RetryPolicy {
        let text = format!(
            "<match **>\n @type forward\n <server>\n  host h\n </server>\n <buffer>\n{section}\n </buffer>\n</match>\n"
        );
        let cfg =
            crate::config::Config::from_str_at(&text, std::path::Path::new("t.conf")).unwrap();
        let crate::config::Directive::Match(m) = &cfg.root.directives[0] else {
            unreachable!()
        };
        let f = m
            .config::<crate::output::forward::ForwardOutputConfig>()
            .unwrap();
        RetryPolicy::from_config(f.buffer.as_ref())
    }

    #[test]
    fn periodic_waits_are_constant_and_exact_without_randomize() {
        let p = policy("retry_type periodic\nretry_wait 3s\nretry_randomize false");
        assert_eq!(p.kind, RetryType::Periodic);
        for attempt in [0, 1, 5, 30] {
            assert_eq!(p.wait(attempt), Duration::from_secs(3));
        }
    }

    #[test]
    fn exponential_uses_the_base_and_the_cap() {
        let p = policy(
            "retry_wait 1s\nretry_exponential_backoff_base 3\nretry_max_interval 20s\nretry_randomize false",
        );
        let waits: Vec<u64> = (0..5).map(|a| p.wait(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 3, 9, 20, 20]);
        // the default: base 2, 60 s cap, randomized within ±12.5 %
        let d = policy("");
        assert!(d.randomize);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let w = d.wait(2).as_secs_f64();
            assert!((3.5..=4.5).contains(&w), "{w}");
            seen.insert((w * 1000.0) as u64);
        }
        assert!(seen.len() > 20, "randomized waits differ: {seen:?}");
        assert_eq!(d.base_wait(10), DEFAULT_MAX_INTERVAL);
    }

    #[test]
    fn limits() {
        let p = policy("retry_max_times 2\nretry_timeout 10s");
        assert!(!p.past_max_times(2));
        assert!(p.past_max_times(3));
        assert!(!p.past_timeout(Duration::from_secs(5), Duration::from_secs(5)));
        assert!(p.past_timeout(Duration::from_secs(6), Duration::from_secs(5)));
        let f = policy("retry_max_times 2\nretry_timeout 10s\nretry_forever true");
        assert!(!f.past_max_times(100));
        assert!(!f.past_timeout(Duration::from_secs(600), Duration::from_secs(5)));
    }

    #[test]
    fn a_base_below_one_is_an_error_with_its_line() {
        let text = "<match **>\n @type forward\n <server>\n  host h\n </server>\n <buffer>\n  retry_exponential_backoff_base 0.5\n </buffer>\n</match>\n";
        let e =
            crate::config::Config::from_str_at(text, std::path::Path::new("t.conf")).unwrap_err();
        assert!(e[0].to_string().starts_with("t.conf:7: "), "{}", e[0]);
    }
}
