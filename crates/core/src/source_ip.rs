use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::{FromRequest, HttpRequest, dev::Payload};

/// The client's address: the leftmost `X-Forwarded-For` value, else the peer.
/// The backend trusts the header because the gateway (the trust boundary)
/// replaces whatever the client sent.
pub fn source_ip(req: &HttpRequest) -> Option<IpAddr> {
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| parse_ip(first.trim()));
    forwarded.or_else(|| req.peer_addr().map(|a| a.ip()))
}

/// Accepts `1.2.3.4`, `::1`, `[::1]` and `1.2.3.4:5678` forms.
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Ok(sock) = s.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    s.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Extractor form of [`source_ip`].
#[derive(Debug, Clone, Copy)]
pub struct SourceIp(pub Option<IpAddr>);

impl FromRequest for SourceIp {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(SourceIp(source_ip(req))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// The source IP of a request from 127.0.0.1 that carries `forwarded_for`.
    fn source_of(forwarded_for: &str) -> Option<IpAddr> {
        let req = TestRequest::default()
            .insert_header(("X-Forwarded-For", forwarded_for))
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .to_http_request();
        source_ip(&req)
    }

    #[test]
    fn leftmost_forwarded_for_wins() {
        let expected = "81.2.69.142".parse().ok();
        assert_eq!(source_of("81.2.69.142, 10.0.0.1"), expected);
    }

    #[test]
    fn falls_back_to_peer() {
        assert_eq!(source_of("garbage"), "127.0.0.1".parse().ok());
        assert_eq!(
            parse_ip("[2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("1.2.3.4:80"), Some("1.2.3.4".parse().unwrap()));
    }
}
