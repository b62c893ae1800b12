//! `galaxy-gateway`: the public edge and the trust boundary (SYSTEM.md §11).
//!
//! Players reach the platform only through it. It proxies the public API to
//! ready backends ([`proxy`], [`upstream`]), decides the client's address
//! ([`client_addr`]), rate-limits sign-in and push upgrades ([`limits`]),
//! and holds players' WebSockets ([`push`], [`socket`], [`hub`]), fed by
//! every backend's gRPC push stream ([`streams`]). [`serve`] runs it all
//! until SIGTERM. Client authors: docs/gateway.md.

mod app;
mod backend_api;
pub mod client_addr;
mod frames;
pub mod hub;
pub mod limits;
mod metrics;
mod pool;
mod problem;
pub mod proxy;
mod push;
mod revalidate;
mod serve;
pub mod settings;
mod socket;
mod streams;
pub mod upstream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use serve::serve;
pub use settings::Settings;

/// What every handler shares.
pub struct Gateway {
    settings: Settings,
    client_addr: client_addr::ClientAddr,
    limits: Arc<limits::Limits>,
    upstreams: Arc<upstream::Upstreams>,
    api: Arc<backend_api::BackendApi>,
    hub: Arc<hub::Hub>,
    streams: Arc<streams::Streams>,
    draining: AtomicBool,
}

impl Gateway {
    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
