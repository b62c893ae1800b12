//! The runtime's state: the pool, the container driver, the caches of
//! records, start requests and engine versions, and the per-game operation
//! locks. The
//! other files add the operations as `impl Runtime` blocks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::AsyncConnection;
use galaxy_db::Pool;
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::db::{self};
use crate::docker::DockerDriver;
use crate::driver::ContainerDriver;
use crate::engine::EngineClient;
use crate::error::RuntimeError;
use crate::events::RuntimeEvents;
use crate::model::{
    DesiredState, EngineVersion, ObservedState, OperationKind, RuntimeRecord, StartRequest,
};
use crate::settings::RuntimeSettings;

/// The implementation. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) settings: RuntimeSettings,
    /// Where engines run (Docker today; docs/scale-out.md for another).
    pub(crate) driver: Arc<dyn ContainerDriver>,
    pub(crate) engine: EngineClient,
    pub(crate) events: Arc<dyn RuntimeEvents>,
    pub(crate) records: RwLock<HashMap<Uuid, RuntimeRecord>>,
    pub(crate) requests: RwLock<HashMap<Uuid, StartRequest>>,
    pub(crate) versions: RwLock<Vec<EngineVersion>>,
    /// One container operation per game at a time (start, stop, patch,
    /// reconcile actions).
    pub(crate) locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// Games whose last turn failed: not before this instant.
    pub(crate) turn_backoff: Mutex<HashMap<Uuid, (u32, Instant)>>,
}

/// How a bring-up came about (for the log and the events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BringUp {
    Start,
    Patch,
}

pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Runtime {
    /// Cache sizes (runtime records, engine versions), read without copying.
    pub fn cached_counts(&self) -> (usize, usize) {
        (
            read(&self.inner.records).len(),
            read(&self.inner.versions).len(),
        )
    }

    /// Builds the service on the Docker driver of `settings` with empty
    /// caches; [`Runtime::warm`] fills them.
    pub fn new(
        pool: Pool,
        settings: RuntimeSettings,
        events: Arc<dyn RuntimeEvents>,
    ) -> Result<Self, String> {
        let driver = DockerDriver::connect(
            &settings.docker_host,
            settings.network.clone(),
            settings.limits,
        )?;
        Ok(Self::with_driver(pool, settings, events, Arc::new(driver)))
    }

    /// Builds the service on another container driver (the Docker-only
    /// settings — host, network, limits — are then the driver's business).
    pub fn with_driver(
        pool: Pool,
        settings: RuntimeSettings,
        events: Arc<dyn RuntimeEvents>,
        driver: Arc<dyn ContainerDriver>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                driver,
                engine: EngineClient::new(),
                events,
                records: RwLock::new(HashMap::new()),
                requests: RwLock::new(HashMap::new()),
                versions: RwLock::new(Vec::new()),
                locks: Mutex::new(HashMap::new()),
                turn_backoff: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }

    pub(crate) fn driver(&self) -> &dyn ContainerDriver {
        self.inner.driver.as_ref()
    }

    /// Prepares the container driver (Docker: API version, engine network).
    /// Until it succeeds every reconcile pass tries again.
    pub async fn ensure_driver(&self) -> Result<(), RuntimeError> {
        self.inner
            .driver
            .prepare()
            .await
            .map_err(RuntimeError::Driver)
    }

    /// Boot: loads the caches, fails operations a previous process left
    /// running, and ensures Docker's engine network. An unreachable Docker
    /// daemon does not keep the backend from serving (lobby, admin and
    /// player reads work); it is logged and retried by the reconciler.
    /// The records, start requests and engine versions as the database
    /// has them (peers write them too), applied to the caches; returns the
    /// records. For the leader's passes (SYSTEM.md §12).
    pub(crate) async fn refresh_from_database(&self) -> Result<Vec<RuntimeRecord>, RuntimeError> {
        let (records, requests, versions) = {
            let mut conn = self.conn().await?;
            (
                db::load_records(&mut conn).await?,
                db::latest_start_requests(&mut conn).await?,
                db::load_versions(&mut conn).await?,
            )
        };
        for record in &records {
            self.cache(record.clone());
        }
        let parsed = parse_requests(requests);
        write(&self.inner.requests).extend(parsed);
        *write(&self.inner.versions) = versions;
        Ok(records)
    }

    pub async fn warm(&self) -> Result<(), RuntimeError> {
        if let Err(e) = self.ensure_driver().await {
            tracing::error!(error = %e, "the container driver is not usable yet; the reconciler retries");
        }
        let mut conn = self
            .inner
            .pool
            .get()
            .await
            .map_err(galaxy_db::DbError::from)?;
        let interrupted = db::fail_interrupted_operations(&mut conn, self.stale_before()).await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "failed runtime operations left running by a previous process"
            );
        }
        let versions = db::load_versions(&mut conn).await?;
        let records = db::load_records(&mut conn).await?;
        let requests = db::latest_start_requests(&mut conn).await?;
        *write(&self.inner.versions) = versions;
        *write(&self.inner.records) = records.into_iter().map(|r| (r.game_id, r)).collect();
        *write(&self.inner.requests) = parse_requests(requests);
        tracing::info!(
            records = read(&self.inner.records).len(),
            versions = read(&self.inner.versions).len(),
            "runtime caches warm"
        );
        Ok(())
    }

    /// An operation started before this instant cannot still be running
    /// in any live process: a start or patch is bounded by the pull, the
    /// start timeout and a few Docker calls.
    pub(crate) fn stale_before(&self) -> chrono::DateTime<Utc> {
        let bound = self.inner.settings.start_timeout + Duration::from_secs(15 * 60);
        Utc::now() - chrono::Duration::from_std(bound).unwrap_or(chrono::Duration::hours(1))
    }

    /// Writes a committed record to the cache unless a newer write of it
    /// (one that committed later, e.g. a turn recorded while a reconcile
    /// pass or a force ran outside the game's lock) is there already.
    pub(crate) fn cache(&self, record: RuntimeRecord) {
        let mut records = write(&self.inner.records);
        if record.supersedes(records.get(&record.game_id)) {
            records.insert(record.game_id, record);
        }
    }

    pub(crate) fn game_lock(&self, game_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(game_id).or_default())
    }

    pub(crate) fn try_lock(&self, game_id: Uuid) -> Result<OwnedMutexGuard<()>, RuntimeError> {
        self.game_lock(game_id)
            .try_lock_owned()
            .map_err(|_| RuntimeError::Busy)
    }

    /// Logs an operation and applies its record change in one transaction,
    /// then caches the new record; returns the operation's id.
    pub(crate) async fn logged_change(
        &self,
        game_id: Uuid,
        kind: OperationKind,
        actor: &str,
        details: &serde_json::Value,
        change: db::RecordChange,
    ) -> Result<Uuid, RuntimeError> {
        let mut conn = self.conn().await?;
        let (op, record) = conn
            .transaction(async move |c| {
                db::log_and_update(c, game_id, kind, actor, details, change).await
            })
            .await?;
        drop(conn);
        self.cache(record);
        Ok(op)
    }

    pub(crate) async fn conn(&self) -> Result<galaxy_db::PooledConn, RuntimeError> {
        Ok(self
            .inner
            .pool
            .get()
            .await
            .map_err(galaxy_db::DbError::from)?)
    }
}

/// A record whose engine should be, and is or is becoming, up.
pub(crate) fn is_active(r: &RuntimeRecord) -> bool {
    r.desired_state == DesiredState::Running
        && matches!(
            r.observed_state,
            ObservedState::Running | ObservedState::Starting
        )
}

/// The stored start requests that can be read (one bad row is logged, not
/// fatal).
pub(crate) fn parse_requests(rows: Vec<(Uuid, serde_json::Value)>) -> HashMap<Uuid, StartRequest> {
    let mut map = HashMap::new();
    for (game_id, raw) in rows {
        match serde_json::from_value::<StartRequest>(raw) {
            Ok(r) => {
                map.insert(game_id, r);
            }
            Err(e) => tracing::error!(%game_id, error = %e, "stored start request unreadable"),
        }
    }
    map
}
