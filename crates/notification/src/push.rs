//! The push service of SYSTEM.md §7: gateways subscribe over gRPC and every
//! subscribed gateway receives every push event (broadcast). A push route is
//! delivered once its event was written to at least one subscriber's stream.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::proto::push_server::{Push, PushServer};
use crate::proto::{PushEvent, SubscribeRequest};

/// Events buffered per gateway before a slow gateway stops counting as a
/// place the event was written to (the worker then retries the route).
const SUBSCRIBER_BUFFER: usize = 4096;

type EventSender = mpsc::Sender<Result<PushEvent, Status>>;

struct Subscriber {
    id: u64,
    gateway_id: String,
    tx: EventSender,
}

/// The in-process fan-out to every subscribed gateway stream.
#[derive(Default)]
pub struct PushHub {
    subscribers: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
}

/// A subscription's receiving end (what a gRPC stream or a test reads).
pub type Subscription = mpsc::Receiver<Result<PushEvent, Status>>;

impl PushHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a subscriber; it receives every event published from now on.
    pub fn subscribe(&self, gateway_id: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Subscriber {
            id,
            gateway_id: gateway_id.to_owned(),
            tx,
        });
        tracing::info!(gateway_id, subscriber = id, "push subscriber connected");
        rx
    }

    /// Subscribers whose streams are still open.
    pub fn subscriber_count(&self) -> usize {
        let mut subs = self.lock();
        subs.retain(|s| !s.tx.is_closed());
        subs.len()
    }

    /// Writes `event` to every subscriber; true when at least one took it.
    /// Closed streams are dropped here.
    pub fn publish(&self, event: &PushEvent) -> bool {
        let mut written = false;
        self.lock()
            .retain(|s| match s.tx.try_send(Ok(event.clone())) {
                Ok(()) => {
                    written = true;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(
                        gateway_id = s.gateway_id,
                        subscriber = s.id,
                        route_id = event.route_id,
                        "push subscriber is not keeping up; event not written to it"
                    );
                    true
                }
                Err(TrySendError::Closed(_)) => {
                    tracing::info!(
                        gateway_id = s.gateway_id,
                        subscriber = s.id,
                        "push subscriber disconnected"
                    );
                    false
                }
            });
        written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        // A panic while holding this lock cannot leave the list inconsistent
        // (every operation is a single Vec mutation), so poisoning is ignored.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The gRPC face of the hub: `Subscribe` with the push bearer token.
pub struct PushGrpc {
    hub: Arc<PushHub>,
    /// SHA-256 of each accepted `Bearer <token>` value (two while the
    /// gateway's token rotates): comparing digests in constant time leaks
    /// neither a token's bytes nor its length.
    expected: Vec<[u8; 32]>,
    shutdown: CancellationToken,
}

impl PushGrpc {
    /// `shutdown` ends every open stream, so a graceful stop does not wait
    /// for gateways to hang up.
    pub fn new(hub: Arc<PushHub>, push_tokens: &[&str], shutdown: CancellationToken) -> Self {
        Self {
            hub,
            expected: push_tokens
                .iter()
                .map(|t| digest(format!("Bearer {t}").as_bytes()))
                .collect(),
            shutdown,
        }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> PushServer<Self> {
        PushServer::new(self)
    }

    fn authorised<T>(&self, request: &Request<T>) -> bool {
        let Some(value) = request.metadata().get("authorization") else {
            return false;
        };
        let presented = digest(value.as_bytes());
        // Every accepted token is compared (no early exit), so the time taken
        // does not tell which one matched.
        let matched = self
            .expected
            .iter()
            .fold(subtle::Choice::from(0), |any, e| any | presented.ct_eq(e));
        bool::from(matched)
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[tonic::async_trait]
impl Push for PushGrpc {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<PushEvent, Status>> + Send>>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        if !self.authorised(&request) {
            tracing::warn!(peer = ?request.remote_addr(), "push subscribe rejected: bad or missing token");
            return Err(Status::unauthenticated(
                "a valid push bearer token is required",
            ));
        }
        let gateway_id: String = request
            .get_ref()
            .gateway_id
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect();
        let rx = self.hub.subscribe(&gateway_id);
        let stream = ReceiverStream::new(rx).take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }
}
