//! The gateway's HTTP surface: probes, the push upgrade, and the proxy as
//! the fallback; one middleware gives every request its id, span, access
//! log line, metrics and a problem+json body on errors.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use tracing::Instrument;

use crate::Gateway;
use crate::problem::ensure_problem;
use crate::upstream::BackendReport;
use crate::{proxy, push};

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/push", get(push::upgrade))
        .fallback(proxy::handle)
        .layer(middleware::from_fn(request_context))
        .with_state(gw)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    draining: bool,
    /// Push stream per backend address: `up`, `connecting`, `down: …`.
    streams: std::collections::BTreeMap<String, String>,
    backends: Vec<BackendReport>,
    open_sockets: usize,
}

/// 200 once at least one backend push stream is up (and not shutting
/// down); the body names every stream and backend either way.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let draining = gw.is_draining();
    let report = Readiness {
        ready: gw.streams.up() > 0 && !draining,
        draining,
        streams: gw.streams.report(),
        backends: gw.upstreams.report(),
        open_sockets: gw.hub.open_sockets(),
    };
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// The metrics label of a request: its route pattern, or for a proxied
/// request its path with ids folded (`/api/v1/games/{id}/report`), so the
/// label set stays bounded.
fn route_label(req: &Request) -> String {
    if let Some(matched) = req.extensions().get::<MatchedPath>() {
        return matched.as_str().to_owned();
    }
    let path = req.uri().path();
    if !proxy::forwardable(path) {
        return "<unmatched>".to_owned();
    }
    path.split('/')
        .take(8)
        .map(|seg| {
            let id_like = uuid::Uuid::parse_str(seg).is_ok()
                || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()));
            if id_like { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn request_context(req: Request, next: Next) -> Response {
    let (supplied_id, traceparent, tracestate) = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            header("x-request-id"),
            header("traceparent"),
            header("tracestate"),
        )
    };
    let request_id = galaxy_core::request_id_or_new(supplied_id.as_deref());
    let method = req.method().to_string();
    let route = route_label(&req);
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        http.method = %method,
        http.route = %route,
        http.status = tracing::field::Empty,
        otel.kind = "server",
    );
    galaxy_telemetry::set_remote_parent(&span, traceparent.as_deref(), tracestate.as_deref());
    let started = Instant::now();
    let inner = span.clone();
    let res = galaxy_core::with_request_id(
        Some(request_id.clone()),
        async move { ensure_problem(next.run(req).await) }.instrument(inner),
    )
    .await;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    galaxy_telemetry::record_http_request(&method, &route, status, elapsed);
    span.record("http.status", status);
    // The path and query are never logged: `?token=` may be in them.
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = %route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    let mut res = res;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    res
}
