//! `/api/v1/*` to a ready backend. Admin routes and everything outside the
//! public API are answered here with 404 and never forwarded.
//!
//! Request bodies are read here first, bounded by the backend's own limit
//! (64 KiB): a body that is refused anyway costs the backend nothing, and a
//! request whose connection to one backend failed can be sent to another.
//! Response bodies are streamed through.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{self as http, HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use galaxy_core::ApiError;
use http_body_util::Full;
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use tokio::time::Sleep;

use crate::Gateway;
use crate::limits::{Scope, retry_after_secs};
use crate::metrics;
use crate::pool;
use crate::problem::{GatewayError, bad_gateway, gateway_timeout};

/// The backend's body limit (SYSTEM.md §5).
pub const BODY_LIMIT: usize = galaxy_core::http::BODY_LIMIT;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the gateway sets itself on the way in.
const REPLACED_INBOUND: &[&str] = &[
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// Whether a path may be forwarded, judged on its decoded form so that
/// `/api/v1/%61dmin/…` or `/api/v1/x/../admin/…` cannot reach the backend's
/// admin routes.
pub fn forwardable(path: &str) -> bool {
    let Ok(decoded) = percent_decode_str(path).decode_utf8() else {
        return false;
    };
    let Some(rest) = decoded.strip_prefix("/api/v1/") else {
        return false;
    };
    let first = rest.split('/').next().unwrap_or_default();
    if first.is_empty() || first == "admin" {
        return false;
    }
    !rest
        .split('/')
        .any(|s| s == "." || s == ".." || s.contains('\\'))
        && !rest.contains("//")
}

/// The fallback handler: everything the gateway does not answer itself.
pub async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    match forward(&gw, peer, req).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn forward(gw: &Gateway, peer: SocketAddr, req: Request) -> Result<Response, GatewayError> {
    let path = req.uri().path();
    if !forwardable(path) {
        return Err(ApiError::not_found("no such route").into());
    }
    let client = gw.client_addr.resolve(peer.ip(), req.headers());
    if path.starts_with("/api/v1/auth/")
        && let Err(wait) = gw.limits.check(Scope::Auth, client).await
    {
        metrics::rate_limited("auth");
        return Err(ApiError::rate_limited(retry_after_secs(wait)).into());
    }
    let (mut parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body).await?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    edit_inbound(&mut parts.headers, client);

    let mut sleep = pool::deadline(gw.settings.upstream_timeout);
    let mut tried = Vec::new();
    loop {
        let Some(backend) = gw.upstreams.pick(&tried) else {
            return Err(bad_gateway("no backend is reachable").into());
        };
        // Only a refused connection moves a request to another backend, so
        // the headers are kept for a next try only when there is one.
        let last = gw.upstreams.count() <= tried.len() + 1;
        let headers = if last {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        let mut upstream = http::Request::new(Full::new(body.clone()));
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = backend.uri(path_and_query.clone());
        *upstream.headers_mut() = headers;
        upstream
            .headers_mut()
            .insert(header::HOST, backend.host_header.clone());
        let sent = tokio::select! {
            sent = gw.upstreams.proxy_client().request(upstream) => sent,
            () = sleep.as_mut() => return Err(gateway_timeout().into()),
        };
        match sent {
            Ok(res) => return Ok(outbound(res, sleep)),
            Err(e) if e.is_connect() => {
                tracing::warn!(backend = %backend.base, "backend refused the connection; trying another");
                backend.mark_unreachable();
                tried.push(backend);
            }
            Err(e) => {
                tracing::warn!(backend = %backend.base, error = %e, "proxied request failed");
                return Err(bad_gateway("the backend failed to answer").into());
            }
        }
    }
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        GatewayError(ApiError::for_status(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        ))
    };
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        // `to_bytes` reports the limit as a length error; anything else is
        // a body the client broke off.
        if std::error::Error::source(&e)
            .is_some_and(<dyn std::error::Error + 'static>::is::<http_body_util::LengthLimitError>)
        {
            too_large()
        } else {
            GatewayError(ApiError::bad_request(
                "validation_failed",
                "the request body could not be read",
            ))
        }
    })
}

/// Turns the client's headers into those a backend sees, in place: minus
/// hop-by-hop and forwarding headers, plus the gateway's verdicts.
fn edit_inbound(headers: &mut HeaderMap, client: std::net::IpAddr) {
    strip(headers, REPLACED_INBOUND);
    if let Ok(v) = HeaderValue::from_str(&client.to_string()) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if let Some(id) =
        galaxy_core::current_request_id().and_then(|id| HeaderValue::from_str(&id).ok())
    {
        headers.insert(HeaderName::from_static("x-request-id"), id);
    }
    // The backend's spans continue the gateway's trace (nothing to continue
    // when no span is recorded: the call is then a cheap `None`).
    if let Some(tp) =
        galaxy_telemetry::current_traceparent().and_then(|t| HeaderValue::from_str(&t).ok())
    {
        headers.insert(HeaderName::from_static("traceparent"), tp);
    }
}

/// Removes from `headers` the hop-by-hop ones (and those the `Connection`
/// header names) and `also`. Most messages carry none of them, and then
/// nothing is allocated.
fn strip(headers: &mut HeaderMap, also: &[&str]) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(v) = value.to_str() else { continue };
        for named in v.split(',') {
            if let Ok(name) = HeaderName::from_bytes(named.trim().as_bytes()) {
                doomed.push(name);
            }
        }
    }
    for name in headers.keys() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || also.contains(&n) {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

fn outbound(upstream: http::Response<Incoming>, deadline: Pin<Box<Sleep>>) -> Response {
    let (mut parts, body) = upstream.into_parts();
    // The gateway's own request id header is set by its middleware.
    strip(&mut parts.headers, &["x-request-id"]);
    Response::from_parts(parts, Body::new(pool::Deadline::new(body, deadline)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_api_paths_are_forwarded() {
        for ok in [
            "/api/v1/user/me",
            "/api/v1/auth/email-code",
            "/api/v1/lobby/games/0b5e/join",
            "/api/v1/openapi.json",
        ] {
            assert!(forwardable(ok), "{ok}");
        }
        for refused in [
            "/",
            "/healthz",
            "/console",
            "/api/v1",
            "/api/v1/",
            "/api/v2/user/me",
            "/api/v1/admin",
            "/api/v1/admin/users",
            "/api/v1/%61dmin/users",
            "/api/v1/user/../admin/users",
            "/api/v1/user/%2e%2e/admin/users",
            "/api/v1//admin/users",
            "/api/v1/user/%ff",
        ] {
            assert!(!forwardable(refused), "{refused}");
        }
    }

    #[test]
    fn hop_by_hop_and_forwarding_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-forwarded-for", HeaderValue::from_static("81.2.69.142"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        let mut out = h.clone();
        edit_inbound(&mut out, "203.0.113.7".parse().unwrap());
        assert!(out.get("connection").is_none());
        assert!(out.get("x-secret-hop").is_none());
        assert!(out.get("keep-alive").is_none());
        assert_eq!(out.get("x-forwarded-for").unwrap(), "203.0.113.7");
        assert_eq!(out.get("authorization").unwrap(), "Bearer t");
    }
}
