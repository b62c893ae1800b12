//! The backends' push streams: one `Subscribe` per backend address (every
//! address each configured name resolves to, resolved again periodically),
//! reconnected with backoff and jitter. Every backend broadcasts what it
//! submits, so the gateway hears every event whichever backend made it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use galaxy_core::env::Secret;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::frames;
use crate::hub::Hub;

pub mod proto {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("galaxy.push.v1");
}

use proto::push_client::PushClient;

const RESOLVE_INTERVAL: Duration = Duration::from_secs(15);
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A stream that stayed up this long starts the next reconnect from the
/// shortest backoff again.
const STABLE: Duration = Duration::from_secs(10);

#[derive(Clone)]
enum State {
    Connecting,
    Up,
    Down(String),
}

pub struct Streams {
    configured: Vec<String>,
    token: Secret,
    gateway_id: String,
    hub: Arc<Hub>,
    states: Mutex<BTreeMap<SocketAddr, State>>,
}

impl Streams {
    pub fn new(configured: Vec<String>, token: Secret, gateway_id: String, hub: Arc<Hub>) -> Self {
        Self {
            configured,
            token,
            gateway_id,
            hub,
            states: Mutex::new(BTreeMap::new()),
        }
    }

    fn states(&self) -> std::sync::MutexGuard<'_, BTreeMap<SocketAddr, State>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, addr: SocketAddr, state: State) {
        self.states().insert(addr, state);
    }

    /// How many streams are up.
    pub fn up(&self) -> usize {
        self.states()
            .values()
            .filter(|s| matches!(s, State::Up))
            .count()
    }

    /// Every stream by address: `up`, `connecting` or `down: <why>`.
    pub fn report(&self) -> BTreeMap<String, String> {
        self.states()
            .iter()
            .map(|(addr, s)| {
                let state = match s {
                    State::Up => "up".to_owned(),
                    State::Connecting => "connecting".to_owned(),
                    State::Down(why) => format!("down: {why}"),
                };
                (addr.to_string(), state)
            })
            .collect()
    }

    /// Keeps one subscription per resolved address until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running: HashMap<SocketAddr, CancellationToken> = HashMap::new();
        loop {
            let (addrs, complete) = self.resolve().await;
            for addr in &addrs {
                running.entry(*addr).or_insert_with(|| {
                    let stop = shutdown.child_token();
                    self.set(*addr, State::Connecting);
                    tokio::spawn(Arc::clone(&self).keep_subscribed(*addr, stop.clone()));
                    stop
                });
            }
            // Only a complete resolution may retire a stream: a name that
            // failed to resolve this once keeps its backends.
            if complete {
                running.retain(|addr, stop| {
                    let keep = addrs.contains(addr);
                    if !keep {
                        tracing::info!(backend = %addr, "backend address gone; unsubscribing");
                        stop.cancel();
                        self.states().remove(addr);
                    }
                    keep
                });
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RESOLVE_INTERVAL) => {}
            }
        }
    }

    async fn resolve(&self) -> (Vec<SocketAddr>, bool) {
        let mut addrs = Vec::new();
        let mut complete = true;
        for name in &self.configured {
            match tokio::net::lookup_host(name.as_str()).await {
                Ok(found) => addrs.extend(found),
                Err(e) => {
                    complete = false;
                    tracing::warn!(backend = %name, error = %e, "cannot resolve backend push address");
                }
            }
        }
        addrs.sort();
        addrs.dedup();
        (addrs, complete)
    }

    async fn keep_subscribed(self: Arc<Self>, addr: SocketAddr, stop: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let started = Instant::now();
            let outcome = self.subscribe(addr, &stop).await;
            if stop.is_cancelled() {
                return;
            }
            let why = match outcome {
                Ok(()) => "stream ended".to_owned(),
                Err(e) => e,
            };
            tracing::warn!(backend = %addr, error = %why, "push stream down; reconnecting");
            self.set(addr, State::Down(why));
            if started.elapsed() > STABLE {
                backoff = MIN_BACKOFF;
            }
            // Full jitter: gateways restarted together do not reconnect in step.
            let wait = backoff.mul_f64(rand::rng().random_range(0.5..=1.0));
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One subscription: returns when it ends (or `stop`).
    async fn subscribe(&self, addr: SocketAddr, stop: &CancellationToken) -> Result<(), String> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut client = PushClient::new(channel);
        let mut request = tonic::Request::new(proto::SubscribeRequest {
            gateway_id: self.gateway_id.clone(),
        });
        let bearer = format!("Bearer {}", self.token.expose())
            .parse()
            .map_err(|_| "GATEWAY_PUSH_TOKEN is not a valid header value".to_owned())?;
        request.metadata_mut().insert("authorization", bearer);
        let mut stream = client
            .subscribe(request)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        tracing::info!(backend = %addr, "push stream up");
        self.set(addr, State::Up);
        let mut shared = SharedPart::default();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = stream.message() => match message {
                    Ok(Some(event)) => self.deliver(&event, &mut shared),
                    Ok(None) => return Ok(()),
                    Err(s) => return Err(format!("{:?}: {}", s.code(), s.message())),
                },
            }
        }
    }

    fn deliver(&self, event: &proto::PushEvent, shared: &mut SharedPart) {
        let ids = (
            Uuid::parse_str(&event.route_id),
            Uuid::parse_str(&event.event_id),
            Uuid::parse_str(&event.account_id),
        );
        let (Ok(route), Ok(intent), Ok(account)) = ids else {
            tracing::warn!(event_id = %event.event_id, "push event with a malformed id dropped");
            return;
        };
        let frame = frames::event_with(route, intent, shared.for_event(event));
        self.hub.dispatch(account, &frame);
    }
}

/// The rendered shared part of the last intent seen on a stream: an
/// intent's routes arrive one after another, so a fan-out parses and
/// renders its payload once, not once per recipient.
#[derive(Default)]
struct SharedPart {
    last: Option<(proto::PushEvent, frames::EventTail)>,
}

impl SharedPart {
    fn for_event(&mut self, event: &proto::PushEvent) -> &frames::EventTail {
        let same = self.last.as_ref().is_some_and(|(seen, _)| {
            seen.event_id == event.event_id
                && seen.kind == event.kind
                && seen.created_at == event.created_at
                && seen.payload_json == event.payload_json
        });
        if !same {
            self.last = None;
        }
        let (_, tail) = self.last.get_or_insert_with(|| {
            let payload = serde_json::from_str(&event.payload_json).unwrap_or_else(|_| {
                tracing::warn!(event_id = %event.event_id, "push event payload is not JSON");
                serde_json::Value::Null
            });
            let tail = frames::EventTail::new(&event.kind, &payload, &event.created_at);
            let key = proto::PushEvent {
                event_id: event.event_id.clone(),
                kind: event.kind.clone(),
                created_at: event.created_at.clone(),
                payload_json: event.payload_json.clone(),
                ..Default::default()
            };
            (key, tail)
        });
        tail
    }
}
