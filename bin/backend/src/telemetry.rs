//! Telemetry wiring (its settings are read by `galaxy_telemetry`): the
//! request observer that links HTTP spans to incoming `traceparent` and
//! records request metrics, and the Prometheus scrape listener (its own
//! port, never the public one).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use galaxy_core::RequestObserver;
use galaxy_telemetry::PrometheusScrape;

/// Notes when SIGTERM/SIGINT arrives so the telemetry flush after the drain
/// gets what is left of `BACKEND_SHUTDOWN_TIMEOUT` (the serve loop listens
/// for the same signals; tokio delivers each to every listener).
#[derive(Clone, Default)]
pub struct ShutdownClock(Arc<OnceLock<Instant>>);

impl ShutdownClock {
    /// Starts watching; call inside the runtime.
    pub fn watch() -> Self {
        let clock = Self::default();
        let mark = clock.0.clone();
        tokio::spawn(async move {
            galaxy_core::shutdown_signal().await;
            let _ = mark.set(Instant::now());
        });
        clock
    }

    /// The flush bound: the rest of the shutdown budget, at least
    /// [`MIN_FLUSH`] (one last export attempt) and at most [`MAX_FLUSH`].
    pub fn flush_bound(&self, shutdown_timeout: Duration) -> Duration {
        let left = match self.0.get() {
            Some(at) => shutdown_timeout.saturating_sub(at.elapsed()),
            None => shutdown_timeout,
        };
        left.clamp(MIN_FLUSH, MAX_FLUSH.max(MIN_FLUSH))
    }
}

pub const MIN_FLUSH: Duration = Duration::from_millis(500);
pub const MAX_FLUSH: Duration = Duration::from_secs(5);

/// Installed into `galaxy_core::RequestContext`.
pub struct HttpObserver;

impl RequestObserver for HttpObserver {
    fn started(&self, span: &tracing::Span, headers: &HeaderMap) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        galaxy_telemetry::set_remote_parent(span, header("traceparent"), header("tracestate"));
    }

    fn finished(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        galaxy_telemetry::record_http_request(method, route, status, elapsed);
    }
}

/// Binds the scrape listener and serves `GET /metrics` until stopped.
pub fn serve_scrape(
    addr: SocketAddr,
    scrape: PrometheusScrape,
) -> anyhow::Result<actix_web::dev::ServerHandle> {
    let server = HttpServer::new(move || {
        let scrape = scrape.clone();
        App::new().service(web::resource("/metrics").get(move || {
            let body = scrape.encode();
            async move {
                HttpResponse::Ok()
                    .content_type(PrometheusScrape::CONTENT_TYPE)
                    .body(body)
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)
    .with_context(|| format!("cannot bind the Prometheus listener on {addr}"))?;
    for a in server.addrs() {
        tracing::info!(addr = %a, "Prometheus scrape listener on /metrics");
    }
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}
