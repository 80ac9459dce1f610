//! The peer's hostname for `source_hostname_key`, as Fluentd's `in_forward` finds it: with
//! `resolve_hostname` (the default once `source_hostname_key` is set) the reverse DNS name of
//! the peer's address (`getnameinfo`, so `/etc/hosts` counts), else the address itself. A
//! lookup that fails or takes longer than [`LOOKUP_TIMEOUT`] gives the address too.
//!
//! Names are cached per address for [`CACHE_TTL`] (at most [`CACHE_ENTRIES`] addresses), so a
//! fleet that reconnects does not send one DNS query per connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one reverse lookup may take before the address is used instead.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a looked-up name is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most addresses kept in the cache (it is cleared when full).
pub const CACHE_ENTRIES: usize = 10_000;

/// Reverse lookups with a small cache (see the module docs).
#[derive(Debug, Default)]
pub struct HostnameResolver {
    cache: Mutex<HashMap<IpAddr, (String, Instant)>>,
}

impl HostnameResolver {
    /// The name of `addr` (or `addr` as text when it has none).
    pub async fn resolve(&self, addr: IpAddr) -> String {
        let now = Instant::now();
        if let Some((name, at)) = self.lock().get(&addr) {
            if now.duration_since(*at) < CACHE_TTL {
                return name.clone();
            }
        }
        let lookup = tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&addr));
        let name = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(Ok(name))) if !name.is_empty() => name,
            _ => addr.to_string(),
        };
        let mut cache = self.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(addr, (name.clone(), now));
        name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (String, Instant)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_resolves_through_the_hosts_file_and_is_cached() {
        let r = HostnameResolver::default();
        let name = r.resolve("127.0.0.1".parse().unwrap()).await;
        // /etc/hosts maps 127.0.0.1 to localhost on every Debian system
        assert_eq!(name, "localhost");
        assert_eq!(r.lock().len(), 1);
        assert_eq!(r.resolve("127.0.0.1".parse().unwrap()).await, "localhost");
    }
}
