//! `GET /api/v1/push`: the checks before a player's socket is upgraded
//! (rate limit, `Origin`, the session token against the backend, the resume
//! cursor), each refused with a problem+json and no upgrade.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use galaxy_core::ApiError;
use uuid::Uuid;

use crate::Gateway;
use crate::backend_api::CallError;
use crate::frames;
use crate::hub::close;
use crate::limits::{Scope, retry_after_secs};
use crate::metrics;
use crate::problem::{GatewayError, bad_gateway};
use crate::socket;

/// Most inbox items one resume replays; a client further behind reads the
/// rest of its inbox over HTTP.
pub const REPLAY_LIMIT: usize = 1000;
/// A player's socket sends pongs and little else.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// The session token of an upgrade: `Authorization: Bearer`, `?token=`, or
/// the subprotocol pair `bearer, <token>` (browsers cannot set headers).
fn credentials(headers: &HeaderMap, query: &[(String, String)]) -> Option<String> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
    {
        return Some(token.to_owned());
    }
    if let Some((_, token)) = query.iter().find(|(k, v)| k == "token" && !v.is_empty()) {
        return Some(token.clone());
    }
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    match offered.as_slice() {
        ["bearer", token, ..] if !token.is_empty() => Some((*token).to_owned()),
        _ => None,
    }
}

fn origin_allowed(gw: &Gateway, headers: &HeaderMap) -> bool {
    let allowed = &gw.settings.allowed_origins;
    if allowed.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        // Not a browser: the origin check is a browser's protection.
        None => true,
        Some(origin) => {
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            allowed.contains(&origin)
        }
    }
}

pub async fn upgrade(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match accept(gw, peer, raw_query, &headers, ws).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn accept(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    raw_query: Option<String>,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, GatewayError> {
    let client = gw.client_addr.resolve(peer.ip(), headers);
    if let Err(wait) = gw.limits.check(Scope::Push, client).await {
        metrics::rate_limited("push");
        return Err(ApiError::rate_limited(retry_after_secs(wait)).into());
    }
    if !origin_allowed(&gw, headers) {
        return Err(ApiError::forbidden("this Origin may not open push sockets").into());
    }
    let ws = ws.map_err(|_| {
        ApiError::bad_request(
            "validation_failed",
            "expected a WebSocket upgrade (GET with Upgrade: websocket)",
        )
    })?;
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let token = credentials(headers, &query)
        .ok_or_else(|| ApiError::unauthorized("a session token is required (Authorization: Bearer, ?token= or the bearer subprotocol)"))?;
    let since =
        match query.iter().find(|(k, _)| k == "since") {
            Some((_, v)) => Some(Uuid::parse_str(v).map_err(|_| {
                ApiError::invalid_field("since", "must be a notification id (UUID)")
            })?),
            None => None,
        };
    let account = match gw.api.account_of(&token, client).await {
        Ok(account) => account,
        Err(CallError::Unauthorized) => {
            return Err(ApiError::unauthorized("the session token is not valid").into());
        }
        Err(CallError::Rejected(403)) => {
            return Err(ApiError::forbidden("the account may not sign in").into());
        }
        Err(CallError::Rejected(_)) => {
            return Err(ApiError::unauthorized("the session token is not valid").into());
        }
        Err(CallError::Unavailable(e)) => {
            tracing::warn!(error = %e, "token check failed");
            return Err(bad_gateway("the backend could not check the session").into());
        }
    };

    let settings = gw.settings.ws;
    // Echoes `bearer` when the client offered it (the browser form).
    let ws = ws
        .protocols(["bearer"])
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    // Registered before the replay is read, so an event submitted meanwhile
    // waits in the queue; the socket drops it if the replay had it.
    let Some(registration) = gw.hub.register(account, &token, client) else {
        tracing::info!(%account, "too many sockets for the account; refusing the new one");
        return Ok(
            ws.on_upgrade(move |socket| socket::refuse(socket, close::TOO_MANY_SOCKETS, settings))
        );
    };
    let replay = match since {
        None => Vec::new(),
        Some(since) => match gw
            .api
            .inbox_after(&token, client, since, REPLAY_LIMIT)
            .await
        {
            Ok(items) => items
                .iter()
                .map(|i| frames::event(i.id, i.event_id, &i.kind, &i.payload, &i.created_at))
                .collect(),
            Err(CallError::Unauthorized) => {
                return Err(ApiError::unauthorized("the session token is not valid").into());
            }
            Err(CallError::Rejected(_)) => {
                return Err(
                    ApiError::invalid_field("since", "not one of your notifications").into(),
                );
            }
            Err(CallError::Unavailable(e)) => {
                tracing::warn!(error = %e, "resume replay failed");
                return Err(
                    bad_gateway("the backend could not list the notifications to replay").into(),
                );
            }
        },
    };
    let welcome = frames::welcome(account, &gw.settings.gateway_id);
    Ok(ws.on_upgrade(move |socket| socket::serve(socket, registration, welcome, replay, settings)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_token_comes_from_a_header_the_query_or_the_subprotocol() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer gu_a"),
        );
        assert_eq!(credentials(&h, &[]).unwrap(), "gu_a");

        let q = vec![("token".to_owned(), "gu_b".to_owned())];
        assert_eq!(credentials(&HeaderMap::new(), &q).unwrap(), "gu_b");

        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("bearer, gu_c"),
        );
        assert_eq!(credentials(&h, &[]).unwrap(), "gu_c");

        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat"),
        );
        assert!(credentials(&h, &[]).is_none());
    }
}
