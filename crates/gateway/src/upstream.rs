//! The backends behind the gateway: every address each configured URL
//! resolves to, probed on `/readyz` so requests only go where they will be
//! served. A backend that starts draining answers 503 there at once, so it
//! stops getting new requests within one probe period.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderValue, Uri};
use futures_util::future::join_all;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::pool::{self, ProxyClient};

/// How often every backend's `/readyz` is asked.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How often host names are resolved again (a scaled-out backend appears).
const RESOLVE_INTERVAL: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const UNREACHABLE: u8 = 0;
const NOT_READY: u8 = 1;
const READY: u8 = 2;

/// One backend process: a configured URL at one of its addresses.
#[derive(Debug)]
pub struct Backend {
    /// `http://10.0.0.5:8080` — where requests are sent.
    pub base: Url,
    /// The configured authority (`backend:8080`), sent as `Host`.
    pub host: String,
    /// `host`, ready to send.
    pub host_header: HeaderValue,
    /// `base`'s address and port, for proxied request URIs.
    authority: Authority,
    state: AtomicU8,
}

impl Backend {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }

    /// The URL of `path_and_query` on this backend.
    pub fn url(&self, path_and_query: &str) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }

    /// The URI of a proxied request on this backend (no string is built).
    pub fn uri(&self, path_and_query: PathAndQuery) -> Uri {
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).unwrap_or_default()
    }

    fn new(base: Url, host: String) -> Option<Self> {
        let authority: Authority =
            format!("{}:{}", base.host_str()?, base.port_or_known_default()?)
                .parse()
                .ok()?;
        Some(Self {
            host_header: HeaderValue::from_str(&host).ok()?,
            base,
            host,
            authority,
            state: AtomicU8::new(UNREACHABLE),
        })
    }

    /// Marks a backend that refused a connection, until the next probe.
    pub fn mark_unreachable(&self) {
        self.state.store(UNREACHABLE, Ordering::Relaxed);
    }
}

/// The pool of backends and the HTTP client pooled connections come from.
pub struct Upstreams {
    configured: Vec<Url>,
    client: reqwest::Client,
    proxy: ProxyClient,
    backends: RwLock<Arc<Vec<Arc<Backend>>>>,
    next: AtomicUsize,
}

#[derive(Debug, Serialize)]
pub struct BackendReport {
    pub url: String,
    pub state: &'static str,
}

impl Upstreams {
    pub fn new(configured: Vec<Url>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(512)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            configured,
            client,
            proxy: pool::client(),
            backends: RwLock::new(Arc::new(Vec::new())),
            next: AtomicUsize::new(0),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The pooled client proxied requests go through.
    pub fn proxy_client(&self) -> &ProxyClient {
        &self.proxy
    }

    /// How many backend addresses are known.
    pub fn count(&self) -> usize {
        self.snapshot().len()
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A backend to send the next request to, round-robin over the ready
    /// ones. When none is ready (PostgreSQL is away, every backend starting)
    /// one that still answers is better than a 502: it serves from its
    /// caches what it can and says 503 for the rest. `None`: nothing answers.
    pub fn pick(&self, skip: &[Arc<Backend>]) -> Option<Arc<Backend>> {
        let all = self.snapshot();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        for wanted in [READY, NOT_READY] {
            let eligible =
                |b: &&Arc<Backend>| b.state() == wanted && !skip.iter().any(|s| Arc::ptr_eq(s, b));
            let count = all.iter().filter(eligible).count();
            if count > 0 {
                return all.iter().filter(eligible).nth(n % count).cloned();
            }
        }
        None
    }

    pub fn report(&self) -> Vec<BackendReport> {
        self.snapshot()
            .iter()
            .map(|b| BackendReport {
                url: b.base.to_string(),
                state: match b.state() {
                    READY => "ready",
                    NOT_READY => "not ready",
                    _ => "unreachable",
                },
            })
            .collect()
    }

    /// Resolves and probes until cancelled. The first round runs before
    /// this returns a future that loops, so the gateway starts knowing.
    pub async fn refresh_once(&self, resolve: bool) {
        if resolve {
            self.resolve().await;
        }
        let backends = self.snapshot();
        join_all(backends.iter().map(|b| self.probe(b))).await;
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut since_resolve = Duration::ZERO;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
            since_resolve += PROBE_INTERVAL;
            let resolve = since_resolve >= RESOLVE_INTERVAL;
            if resolve {
                since_resolve = Duration::ZERO;
            }
            self.refresh_once(resolve).await;
        }
    }

    async fn resolve(&self) {
        let mut found: Vec<(Url, String)> = Vec::new();
        for url in &self.configured {
            let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                continue;
            };
            let authority = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            };
            let lookup_host = host.trim_start_matches('[').trim_end_matches(']');
            match tokio::net::lookup_host((lookup_host, port)).await {
                Ok(addrs) => {
                    let mut addrs: Vec<SocketAddr> = addrs.collect();
                    addrs.sort();
                    addrs.dedup();
                    for addr in addrs {
                        let mut base = url.clone();
                        if base.set_ip_host(addr.ip()).is_ok() && base.set_port(Some(port)).is_ok()
                        {
                            found.push((base, authority.clone()));
                        }
                    }
                }
                Err(e) => tracing::warn!(backend = %url, error = %e, "cannot resolve backend"),
            }
        }
        let old = self.snapshot();
        // Keep what we know of a backend that is still there.
        let next: Vec<Arc<Backend>> = found
            .into_iter()
            .filter_map(|(base, host)| {
                old.iter()
                    .find(|b| b.base == base)
                    .cloned()
                    .or_else(|| Backend::new(base, host).map(Arc::new))
            })
            .collect();
        if next.is_empty() && !old.is_empty() {
            // A resolver hiccup must not empty the pool.
            return;
        }
        *self
            .backends
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
    }

    async fn probe(&self, backend: &Backend) {
        let state = match self
            .client
            .get(backend.url("/readyz"))
            .header(reqwest::header::HOST, &backend.host)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => READY,
            Ok(_) => NOT_READY,
            Err(_) => UNREACHABLE,
        };
        let before = backend.state.swap(state, Ordering::Relaxed);
        if before != state {
            tracing::info!(backend = %backend.base, ready = state == READY, reachable = state != UNREACHABLE, "backend state changed");
        }
    }
}
