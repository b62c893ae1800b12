//! The proxy's connections to the backends: hyper's pooled HTTP/1.1 client
//! used directly, so a proxied request is the client's own request with its
//! headers edited in place — no URL string to build and parse again, no
//! header map copied, and the response body handed on as hyper read it.
//! (The probes and token checks, which are few, keep using `reqwest`.)

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, Sleep};

/// Request bodies are read whole first (bounded), so they are sent whole.
pub type ProxyClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> ProxyClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    // Addresses come resolved from `Upstreams`; nothing is looked up per
    // request.
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        // A pooled connection the backend closed just before it was used
        // is retried on a fresh one by hyper itself.
        .retry_canceled_requests(true)
        .set_host(false)
        .build(connector)
}

/// A response body that fails once `deadline` passes: the upstream timeout
/// bounds the whole proxied request, as the response headers alone would
/// not (a backend that stalls mid-body must not hold the client forever).
pub struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    pub fn new(inner: Incoming, sleep: Pin<Box<Sleep>>) -> Self {
        Self { inner, sleep }
    }
}

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the backend's response body did not finish within GATEWAY_UPSTREAM_TIMEOUT")]
pub struct BodyTimeout;

impl Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The sleep that bounds one proxied request.
pub fn deadline(timeout: Duration) -> Pin<Box<Sleep>> {
    Box::pin(tokio::time::sleep_until(Instant::now() + timeout))
}
