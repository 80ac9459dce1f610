//! The hosts an output sends to, handled the way fluent-plugin-elasticsearch's transport
//! (the elasticsearch-transport gem's connection pool) handles them:
//!
//! - **Round robin**: each request starts at the next host of `hosts`.
//! - **A failed host is skipped**: a host that gave no HTTP response (refused, reset, timed
//!   out) is marked dead for `resurrect_after` (60 s), doubled for each further failure in a
//!   row (capped at 32×); requests go to the live hosts meanwhile. When it is due, the next
//!   request tries it again; one success makes it live again. When every host is dead, all
//!   are tried, the one due soonest first — a request never gives up without trying.
//! - **Node discovery** (`reload_connections`, default true): every `reload_after` requests
//!   (10,000 by default) the output asks a live host for `GET _nodes/http` and replaces its
//!   list with the nodes' HTTP `publish_address`es (same scheme, user and path as the first
//!   configured host). With `reload_on_failure true` it also does so after a request failed
//!   on every host. Discovery that fails keeps the current list.
//! - **Back to the configured hosts**: when a request failed on every host, the list goes back
//!   to the configured `hosts` (as the plugin's client is rebuilt after "host unreachable"),
//!   so addresses learnt by discovery that are not reachable from here cannot strand the
//!   output. `reconnect_on_error true` does the same after *any* failed request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::HostOptions;

/// Longest skip: `resurrect_after` × this.
const MAX_BACKOFF_FACTOR: u32 = 32;

#[derive(Debug, Clone)]
struct Host {
    base: String,
    /// Failures in a row.
    failures: u32,
    /// Skipped until then.
    dead_until: Option<Instant>,
}

impl Host {
    fn new(base: String) -> Self {
        Self {
            base,
            failures: 0,
            dead_until: None,
        }
    }
}

#[derive(Debug)]
struct State {
    hosts: Vec<Host>,
    next: usize,
    /// Requests since the last discovery.
    since_reload: u64,
    /// The list came from discovery (not the configured hosts).
    discovered: bool,
}

/// The host list of one output (shared by its flush workers).
#[derive(Debug)]
pub struct HostPool {
    seeds: Vec<String>,
    opts: HostOptions,
    state: Mutex<State>,
}

impl HostPool {
    /// `seeds`: the configured base URLs (`scheme://host:port[/path]`), at least one.
    pub fn new(seeds: Vec<String>, opts: HostOptions) -> Self {
        let hosts = seeds.iter().cloned().map(Host::new).collect();
        Self {
            seeds,
            opts,
            state: Mutex::new(State {
                hosts,
                next: 0,
                since_reload: 0,
                discovered: false,
            }),
        }
    }

    /// The order in which one request tries the hosts: the live ones (and those due to be
    /// tried again) in round robin, then — only if there is none — the dead ones, soonest due
    /// first.
    pub fn plan(&self) -> Vec<String> {
        self.plan_at(Instant::now())
    }

    fn plan_at(&self, now: Instant) -> Vec<String> {
        let mut st = self.state.lock().unwrap();
        let n = st.hosts.len();
        let start = st.next % n.max(1);
        st.next = st.next.wrapping_add(1);
        st.since_reload += 1;
        let order = (0..n).map(|i| &st.hosts[(start + i) % n]);
        let live: Vec<String> = order
            .clone()
            .filter(|h| h.dead_until.is_none_or(|t| t <= now))
            .map(|h| h.base.clone())
            .collect();
        if !live.is_empty() {
            return live;
        }
        let mut dead: Vec<&Host> = order.collect();
        dead.sort_by_key(|h| h.dead_until);
        dead.into_iter().map(|h| h.base.clone()).collect()
    }

    /// `base` answered (any HTTP status): live again. `true` if it had failed before.
    pub fn succeeded(&self, base: &str) -> bool {
        let mut st = self.state.lock().unwrap();
        match st.hosts.iter_mut().find(|h| h.base == base) {
            Some(h) => {
                let was_dead = h.failures > 0;
                h.failures = 0;
                h.dead_until = None;
                was_dead
            }
            None => false,
        }
    }

    /// `base` gave no response: skipped for `resurrect_after · 2^(failures-1)`, which is
    /// returned.
    pub fn failed(&self, base: &str) -> Duration {
        self.failed_at(base, Instant::now())
    }

    fn failed_at(&self, base: &str, now: Instant) -> Duration {
        let mut st = self.state.lock().unwrap();
        match st.hosts.iter_mut().find(|h| h.base == base) {
            Some(h) => {
                h.failures = h.failures.saturating_add(1);
                let factor = 1u32
                    .checked_shl(h.failures - 1)
                    .unwrap_or(MAX_BACKOFF_FACTOR)
                    .min(MAX_BACKOFF_FACTOR);
                let skip = self.opts.resurrect_after * factor;
                h.dead_until = Some(now + skip);
                skip
            }
            None => Duration::ZERO,
        }
    }

    /// Is node discovery due before this request (`reload_connections`)?
    pub fn reload_due(&self) -> bool {
        let st = self.state.lock().unwrap();
        self.opts.reload_every.is_some_and(|n| st.since_reload >= n)
    }

    /// Replaces the list with discovered HTTP addresses (`host:port`, as in
    /// `publish_address`); hosts already known keep their state. Empty input changes nothing.
    pub fn replace_with_discovered(&self, addresses: &[String]) -> Vec<String> {
        let template = reqwest::Url::parse(&self.seeds[0]).ok();
        let bases: Vec<String> = addresses
            .iter()
            .filter_map(|a| base_for(template.as_ref(), a))
            .collect();
        let mut st = self.state.lock().unwrap();
        st.since_reload = 0;
        if bases.is_empty() {
            return st.hosts.iter().map(|h| h.base.clone()).collect();
        }
        let old = std::mem::take(&mut st.hosts);
        st.hosts = bases
            .iter()
            .map(|b| {
                old.iter()
                    .find(|h| &h.base == b)
                    .cloned()
                    .unwrap_or_else(|| Host::new(b.clone()))
            })
            .collect();
        st.discovered = true;
        bases
    }

    /// Discovery was tried and failed: not again before another `reload_after` requests.
    pub fn reload_failed(&self) {
        self.state.lock().unwrap().since_reload = 0;
    }

    /// Back to the configured hosts, all live (after every host failed, or with
    /// `reconnect_on_error` after any failure). `true` if the list changed.
    pub fn reset_to_seeds(&self) -> bool {
        let mut st = self.state.lock().unwrap();
        let changed = st.discovered;
        st.hosts = self.seeds.iter().cloned().map(Host::new).collect();
        st.discovered = false;
        changed
    }

    /// The current list, for logs.
    pub fn current(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.hosts.iter().map(|h| h.base.clone()).collect()
    }

    pub fn options(&self) -> &HostOptions {
        &self.opts
    }
}

/// `scheme://[user:pass@]ADDRESS[/path]` from a configured URL and a `publish_address`
/// (`10.0.0.5:9200`, `node-1/10.0.0.5:9200` — the name before `/` is used, as the Ruby
/// transport does — or `[::1]:9200`).
fn base_for(template: Option<&reqwest::Url>, publish_address: &str) -> Option<String> {
    let addr = match publish_address.split_once('/') {
        Some((name, ip_port)) if !name.is_empty() => {
            let port = ip_port.rsplit_once(':')?.1;
            format!("{name}:{port}")
        }
        Some((_, ip_port)) => ip_port.to_string(),
        None => publish_address.to_string(),
    };
    let t = template?;
    let mut url = reqwest::Url::parse(&format!("{}://{addr}", t.scheme())).ok()?;
    if !t.username().is_empty() {
        url.set_username(t.username()).ok()?;
        url.set_password(t.password()).ok()?;
    }
    url.set_path(t.path());
    Some(url.as_str().trim_end_matches('/').to_string())
}

/// The HTTP `publish_address`es in a `GET _nodes/http` response.
pub fn publish_addresses(nodes_http: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = nodes_http["nodes"]
        .as_object()
        .map(|nodes| {
            nodes
                .values()
                .filter_map(|n| n["http"]["publish_address"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// How long discovery waits for `_nodes/http` at most.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, reload_every: Option<u64>) -> HostPool {
        HostPool::new(
            (1..=n).map(|i| format!("http://h{i}:9200")).collect(),
            HostOptions {
                resurrect_after: Duration::from_secs(60),
                reload_every,
                reload_on_failure: false,
                reconnect_on_error: false,
            },
        )
    }

    #[test]
    fn round_robin_skips_a_failed_host_until_it_is_due() {
        let p = pool(3, None);
        let t0 = Instant::now();
        assert_eq!(p.plan_at(t0)[0], "http://h1:9200");
        assert_eq!(p.plan_at(t0)[0], "http://h2:9200");
        assert_eq!(p.plan_at(t0)[0], "http://h3:9200");
        assert_eq!(p.failed_at("http://h2:9200", t0), Duration::from_secs(60));
        // h2 is left out of every plan for 60 s
        for _ in 0..6 {
            let plan = p.plan_at(t0 + Duration::from_secs(59));
            assert_eq!(plan.len(), 2, "{plan:?}");
            assert!(!plan.contains(&"http://h2:9200".to_string()));
        }
        assert_eq!(p.plan_at(t0 + Duration::from_secs(60)).len(), 3);
        // a second failure in a row: 120 s
        p.failed_at("http://h2:9200", t0);
        assert_eq!(p.plan_at(t0 + Duration::from_secs(119)).len(), 2);
        assert_eq!(p.plan_at(t0 + Duration::from_secs(120)).len(), 3);
        // a success resets it
        assert!(p.succeeded("http://h2:9200"));
        assert!(!p.succeeded("http://h2:9200"));
        p.failed_at("http://h2:9200", t0);
        assert_eq!(p.plan_at(t0 + Duration::from_secs(60)).len(), 3);
        // the skip is capped at 32 x resurrect_after
        for _ in 0..40 {
            p.failed_at("http://h2:9200", t0);
        }
        assert_eq!(p.plan_at(t0 + Duration::from_secs(32 * 60)).len(), 3);
    }

    #[test]
    fn all_dead_means_all_tried_soonest_due_first() {
        let p = pool(3, None);
        let t0 = Instant::now();
        p.failed_at("http://h3:9200", t0);
        p.failed_at("http://h1:9200", t0 + Duration::from_secs(1));
        p.failed_at("http://h2:9200", t0 + Duration::from_secs(2));
        assert_eq!(
            p.plan_at(t0 + Duration::from_secs(3)),
            ["http://h3:9200", "http://h1:9200", "http://h2:9200"]
        );
    }

    #[test]
    fn discovery_replaces_the_list_and_a_reset_restores_the_seeds() {
        let p = HostPool::new(
            vec!["https://u:p@es.example:9200/proxy".into()],
            HostOptions {
                resurrect_after: Duration::from_secs(60),
                reload_every: Some(2),
                reload_on_failure: false,
                reconnect_on_error: false,
            },
        );
        assert!(!p.reload_due());
        p.plan();
        p.plan();
        assert!(p.reload_due());
        let nodes = serde_json::json!({"nodes": {
            "a": {"http": {"publish_address": "10.0.0.2:9201"}},
            "b": {"http": {"publish_address": "node-3/10.0.0.3:9202"}},
            "c": {"http": {"publish_address": "[::1]:9203"}}}});
        let got = p.replace_with_discovered(&publish_addresses(&nodes));
        assert_eq!(
            got,
            [
                "https://u:p@10.0.0.2:9201/proxy",
                "https://u:p@[::1]:9203/proxy",
                "https://u:p@node-3:9202/proxy"
            ]
        );
        assert!(!p.reload_due());
        assert_eq!(p.current(), got);
        assert!(p.reset_to_seeds());
        assert_eq!(p.current(), ["https://u:p@es.example:9200/proxy"]);
        assert!(!p.reset_to_seeds());
        // nothing discovered: the list stays
        assert_eq!(p.replace_with_discovered(&[]).len(), 1);
    }
}
