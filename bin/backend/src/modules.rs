//! Where the domain modules are composed. Each module adds its lines to the
//! four steps below — nothing else in the binary knows about modules:
//!
//! 1. `Modules::build` — construct services (caches empty) from config + pool,
//!    register readiness flags.
//! 2. `Modules::warm` — after migrations: load caches, bootstrap data; set flags.
//! 3. `Modules::configure` — mount routes and register app data (resolvers).
//! 4. `Modules::spawn_workers` — background workers, stopped by `shutdown`.
//!
//! The OpenAPI document of each module is merged in `openapi.rs`.

use actix_web::web;
use galaxy_core::Readiness;
use galaxy_db::Pool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Every module's services; cheap to clone (one per HTTP worker).
#[derive(Clone)]
pub struct Modules {
    #[allow(dead_code)] // used by the modules as they are composed here
    pool: Pool,
}

impl Modules {
    pub fn build(_config: &Config, pool: Pool, _readiness: &Readiness) -> anyhow::Result<Self> {
        Ok(Self { pool })
    }

    /// Runs once migrations are applied; `/api/*` opens when it returns.
    pub async fn warm(&self) -> anyhow::Result<()> {
        Ok(())
    }

    pub fn configure(&self, _cfg: &mut web::ServiceConfig) {}

    pub fn spawn_workers(&self, _shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
        Vec::new()
    }
}
