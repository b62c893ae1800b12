//! The client-address verdict: the trust boundary of the platform.
//!
//! The backend believes the leftmost `X-Forwarded-For` value, so the gateway
//! never passes on what a client wrote there. The client is the peer,
//! unless the peer is a trusted proxy (a load balancer in front of the
//! gateway): then it is the rightmost address in `X-Forwarded-For` that is
//! not itself a trusted proxy — the addresses left of it were written by
//! whoever the untrusted hop was, so they prove nothing.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct ClientAddr {
    trusted: Vec<IpNet>,
}

impl ClientAddr {
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        // Every `X-Forwarded-For` header, in order, is one list.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) if self.is_trusted(ip) => client = ip,
                Some(ip) => return ip,
                // A hop we cannot read: stop at the last address we could.
                None => return client,
            }
        }
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = s.parse::<std::net::SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    s.strip_prefix('[')?
        .strip_suffix(']')?
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let c = ClientAddr::new(vec![]);
        assert_eq!(
            c.resolve(ip("203.0.113.9"), &headers(&["81.2.69.142"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_wins() {
        let c = ClientAddr::new(vec!["10.0.0.0/8".parse().unwrap()]);
        // spoofed, real client, inner proxy
        let h = headers(&["1.1.1.1, 81.2.69.142", "10.1.2.3"]);
        assert_eq!(c.resolve(ip("10.0.0.1"), &h), ip("81.2.69.142"));
        // only trusted hops: the leftmost of them
        assert_eq!(
            c.resolve(ip("10.0.0.1"), &headers(&["10.9.9.9"])),
            ip("10.9.9.9")
        );
        // no header: the proxy itself
        assert_eq!(c.resolve(ip("10.0.0.1"), &headers(&[])), ip("10.0.0.1"));
        // garbage stops the walk at the last readable hop
        assert_eq!(
            c.resolve(
                ip("10.0.0.1"),
                &headers(&["81.2.69.142, nonsense, 10.2.2.2"])
            ),
            ip("10.2.2.2")
        );
        assert_eq!(
            c.resolve(ip("10.0.0.1"), &headers(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let c = ClientAddr::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            c.resolve(ip("::ffff:127.0.0.1"), &headers(&["81.2.69.142"])),
            ip("81.2.69.142")
        );
    }
}
