//! The client address of a request, as used by the per-address login limit.
//!
//! Behind a reverse proxy or load balancer the TCP peer is the proxy, and the
//! real client is in `X-Forwarded-For` — but that header is plain text any
//! client can send, so it is believed only as far as the hops are trusted:
//!
//! * `TRUSTED_PROXIES` unset (the default): the client is the TCP peer, and
//!   `X-Forwarded-For` is ignored. Behind a proxy every client then shares
//!   the proxy's address (and its limit) — safe, never spoofable.
//! * `TRUSTED_PROXIES=10.0.0.0/8,…` (the addresses of *your* proxies): if the
//!   peer is trusted, the `X-Forwarded-For` list is walked from the right
//!   (the entry the nearest proxy appended) past every trusted address; the
//!   first untrusted entry is the client. Entries left of it were written by
//!   the client itself and are never used. If every hop is trusted, the
//!   leftmost is the client; an unparsable entry ends the walk at the hop
//!   that sent it.
//!
//! IPv4-mapped IPv6 addresses count as IPv4. For limiting, an IPv6 client is
//! its /64 network (one host usually owns a whole /64).

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::{IpNet, Ipv6Net};

fn parse_hop(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    e.parse::<IpAddr>()
        .ok()
        .or_else(|| e.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client address of a request from `peer` with these headers.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut current = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&current) {
        return current;
    }
    // Several X-Forwarded-For headers are one list, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                current = ip;
                if !is_trusted(&current) {
                    break;
                }
            }
            None => break,
        }
    }
    current
}

/// The key a client address is counted under: the IPv4 address, or the /64
/// network of an IPv6 address.
pub fn limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let h = headers(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &[]), ip("10.0.0.2"));
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof_the_header() {
        let h = headers(&["203.0.113.9"]);
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("198.51.100.7"), &h, &t), ip("198.51.100.7"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let t = nets(&["10.0.0.0/8"]);
        // The client wrote a fake first entry; the proxies appended the rest.
        let h = headers(&["1.2.3.4, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &t), ip("203.0.113.9"));
        // Ports and IPv4-mapped addresses are understood.
        let h = headers(&["203.0.113.9:5555"]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.2"), &h, &t), ip("203.0.113.9"));
        // All hops trusted: the leftmost.
        let h = headers(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &t), ip("10.9.9.9"));
        // Garbage ends the walk at the hop that forwarded it.
        let h = headers(&["203.0.113.9, garbage, 10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &t), ip("10.1.1.1"));
        // No header at all: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.2"), &headers(&[]), &t), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(limit_key(ip("2001:db8:1:2:bbbb::9")), "2001:db8:1:2::/64");
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(limit_key(ip("192.0.2.1")), "192.0.2.1");
    }
}
