//! The runtime service: the [`RuntimeService`] face and its implementation
//! [`Runtime`] over PostgreSQL + Docker, with the records and engine-version
//! caches, the container operations, the reconciler and the turn scheduler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use diesel_async::AsyncConnection;
use futures_util::StreamExt;
use galaxy_core::{Page, Paged};
use galaxy_db::Pool;
use serde_json::{Value, json};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::db::{self, RecordChange};
use crate::docker::{self, EngineContainer, Engines, HEALTH_POLL};
use crate::engine::EngineClient;
use crate::error::RuntimeError;
use crate::model::{
    Actor, DesiredState, EngineFailure, EngineFailureKind, EngineVersion, EngineVersionStatus,
    GameTurn, ObservedState, Operation, OperationKind, Outcome, ResourceLimits, RuntimeRecord,
    StartRequest,
};

/// Reactions of other modules (lobby status, notifications), implemented
/// by the binary's adapters. Called after the runtime's own commit; an
/// implementation handles its own failures. `engine_running` fires on every
/// transition into `running` (a first start, a restart by the reconciler, a
/// patch), so implementations must be idempotent.
#[async_trait]
pub trait RuntimeEvents: Send + Sync + 'static {
    async fn engine_running(&self, game_id: Uuid);
    async fn engine_failed(&self, game_id: Uuid, failure: EngineFailure);
    async fn turn_generated(&self, game_id: Uuid, turn: u32, forced: bool);
}

/// `BACKEND_RUNTIME_IMAGE_PULL_POLICY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    IfMissing,
    Always,
    Never,
}

impl PullPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "if_missing" => Some(Self::IfMissing),
            "always" => Some(Self::Always),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `BACKEND_DOCKER_HOST`.
    pub docker_host: String,
    /// `BACKEND_DOCKER_NETWORK`.
    pub network: String,
    pub pull_policy: PullPolicy,
    pub start_timeout: Duration,
    pub reconcile_interval: Duration,
    pub turn_tick_interval: Duration,
    pub limits: ResourceLimits,
}

/// The runtime as other modules and the HTTP routes use it.
#[async_trait]
pub trait RuntimeService: Send + Sync + 'static {
    /// Starts a game's engine for the first time (or retries a failed
    /// start). Returns the operation id at once; the outcome arrives through
    /// [`RuntimeEvents`] and the operation log.
    async fn start_game(&self, req: StartRequest, actor: Actor) -> Result<Uuid, RuntimeError>;
    /// Starts a stopped or failed game again with its stored start config.
    async fn restart_game(&self, game_id: Uuid, actor: Actor) -> Result<Uuid, RuntimeError>;
    async fn stop_game(&self, game_id: Uuid, actor: Actor) -> Result<Uuid, RuntimeError>;
    async fn patch_game(
        &self,
        game_id: Uuid,
        engine_version: &str,
        actor: Actor,
    ) -> Result<Uuid, RuntimeError>;
    /// Sets the one-shot flag; the next scheduler tick generates the turn
    /// and finishes the operation.
    async fn force_next_turn(&self, game_id: Uuid, actor: Actor) -> Result<Uuid, RuntimeError>;

    fn record(&self, game_id: Uuid) -> Option<RuntimeRecord>;
    /// Every record, ordered by game id.
    fn records(&self) -> Vec<RuntimeRecord>;
    async fn operations(&self, game_id: Uuid, page: Page)
    -> Result<Paged<Operation>, RuntimeError>;
    async fn turns(&self, game_id: Uuid) -> Result<Vec<GameTurn>, RuntimeError>;

    async fn engine_report(
        &self,
        game_id: Uuid,
        race: &str,
        turn: Option<u32>,
    ) -> Result<Value, RuntimeError>;
    /// The engine validates; its 400 reason comes back as
    /// [`RuntimeError::EngineRejected`].
    async fn submit_orders(
        &self,
        game_id: Uuid,
        race: &str,
        orders: Value,
    ) -> Result<(), RuntimeError>;

    fn versions(&self) -> Vec<EngineVersion>;
    fn version(&self, version: &str) -> Option<EngineVersion>;
    fn newest_active_version(&self) -> Option<EngineVersion>;
    async fn create_version(
        &self,
        version: &str,
        image: &str,
    ) -> Result<EngineVersion, RuntimeError>;
    async fn set_version_status(
        &self,
        version: &str,
        status: EngineVersionStatus,
    ) -> Result<EngineVersion, RuntimeError>;
}

/// What one reconcile pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub containers: usize,
    pub records: usize,
    pub restarted: usize,
    pub stopped: usize,
    pub orphans_removed: usize,
    pub refreshed: usize,
}

/// The implementation. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    settings: RuntimeSettings,
    docker: RwLock<Engines>,
    docker_ready: AtomicBool,
    engine: EngineClient,
    events: Arc<dyn RuntimeEvents>,
    records: RwLock<HashMap<Uuid, RuntimeRecord>>,
    requests: RwLock<HashMap<Uuid, StartRequest>>,
    versions: RwLock<Vec<EngineVersion>>,
    /// One container operation per game at a time (start, stop, patch,
    /// reconcile actions).
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// Games whose last turn failed: not before this instant.
    turn_backoff: Mutex<HashMap<Uuid, (u32, Instant)>>,
}

/// How a bring-up came about (for the log and the events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BringUp {
    Start,
    Patch,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    /// Cache sizes (runtime records, engine versions), read without copying.
    pub fn cached_counts(&self) -> (usize, usize) {
        (
            read(&self.inner.records).len(),
            read(&self.inner.versions).len(),
        )
    }

    /// Builds the service with empty caches; [`Runtime::warm`] fills them.
    pub fn new(
        pool: Pool,
        settings: RuntimeSettings,
        events: Arc<dyn RuntimeEvents>,
    ) -> Result<Self, String> {
        let docker = docker::connect(&settings.docker_host)?;
        let engines = Engines::new(docker, settings.network.clone(), settings.limits);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                docker: RwLock::new(engines),
                docker_ready: AtomicBool::new(false),
                engine: EngineClient::new(),
                events,
                records: RwLock::new(HashMap::new()),
                requests: RwLock::new(HashMap::new()),
                versions: RwLock::new(Vec::new()),
                locks: Mutex::new(HashMap::new()),
                turn_backoff: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }

    fn docker(&self) -> Engines {
        read(&self.inner.docker).clone()
    }

    /// Negotiates the Docker API version and ensures the engine network.
    /// Until it succeeds every reconcile pass tries again.
    pub async fn ensure_docker(&self) -> Result<(), RuntimeError> {
        if self.inner.docker_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let docker = docker::negotiate(self.docker().client())
            .await
            .map_err(RuntimeError::Docker)?;
        let engines = Engines::new(
            docker,
            self.inner.settings.network.clone(),
            self.inner.settings.limits,
        );
        engines
            .ensure_network()
            .await
            .map_err(RuntimeError::Docker)?;
        *write(&self.inner.docker) = engines;
        self.inner.docker_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Boot: loads the caches, fails operations a previous process left
    /// running, and ensures Docker's engine network. An unreachable Docker
    /// daemon does not keep the backend from serving (lobby, admin and
    /// player reads work); it is logged and retried by the reconciler.
    pub async fn warm(&self) -> Result<(), RuntimeError> {
        if let Err(e) = self.ensure_docker().await {
            tracing::error!(error = %e, "Docker is not usable yet; the reconciler retries");
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
        let mut map = HashMap::new();
        for (game_id, raw) in requests {
            match serde_json::from_value::<StartRequest>(raw) {
                Ok(r) => {
                    map.insert(game_id, r);
                }
                Err(e) => tracing::error!(%game_id, error = %e, "stored start request unreadable"),
            }
        }
        *write(&self.inner.requests) = map;
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
    fn stale_before(&self) -> chrono::DateTime<Utc> {
        let bound = self.inner.settings.start_timeout + Duration::from_secs(15 * 60);
        Utc::now() - chrono::Duration::from_std(bound).unwrap_or(chrono::Duration::hours(1))
    }

    fn cache(&self, record: RuntimeRecord) {
        write(&self.inner.records).insert(record.game_id, record);
    }

    fn game_lock(&self, game_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(game_id).or_default())
    }

    fn try_lock(&self, game_id: Uuid) -> Result<OwnedMutexGuard<()>, RuntimeError> {
        self.game_lock(game_id)
            .try_lock_owned()
            .map_err(|_| RuntimeError::Busy)
    }

    async fn conn(&self) -> Result<galaxy_db::PooledConn, RuntimeError> {
        Ok(self
            .inner
            .pool
            .get()
            .await
            .map_err(galaxy_db::DbError::from)?)
    }

    fn usable_version(&self, version: &str) -> Result<EngineVersion, RuntimeError> {
        let v = self
            .version(version)
            .ok_or_else(|| RuntimeError::UnknownVersion(version.to_owned()))?;
        if v.status == EngineVersionStatus::Disabled {
            return Err(RuntimeError::VersionDisabled(version.to_owned()));
        }
        Ok(v)
    }

    /// Inserts the start operation and re-arms the record in one
    /// transaction, then runs the bring-up in the background.
    async fn begin_start(
        &self,
        guard: OwnedMutexGuard<()>,
        req: StartRequest,
        version: EngineVersion,
        actor: Actor,
        reason: &str,
    ) -> Result<Uuid, RuntimeError> {
        let game_id = req.game_id;
        let name = docker::container_name(game_id);
        let details = json!({
            "request": req,
            "engine_version": version.version,
            "image": version.image,
            "reason": reason,
        });
        let mut conn = self.conn().await?;
        let (op, record) = conn
            .transaction(async move |c| {
                let record =
                    db::upsert_starting_record(c, game_id, &name, &version.version, &version.image)
                        .await?;
                let op = db::insert_operation(
                    c,
                    game_id,
                    OperationKind::Start,
                    &actor.as_log_value(),
                    &details,
                )
                .await?;
                Ok::<_, diesel::result::Error>((op, record))
            })
            .await?;
        drop(conn);
        self.cache(record);
        write(&self.inner.requests).insert(game_id, req);
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            this.bring_up(game_id, op, BringUp::Start).await;
        });
        Ok(op)
    }

    /// Brings a game's engine up on its record's image and finishes `op`.
    async fn bring_up(&self, game_id: Uuid, op: Uuid, how: BringUp) -> bool {
        let started = Instant::now();
        let outcome = self.try_bring_up(game_id).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let result = async {
            let mut conn = self.conn().await?;
            match &outcome {
                Ok((container_id, endpoint, turn)) => {
                    let interval = self.turn_interval(game_id);
                    let record = self.record(game_id);
                    let next = record
                        .as_ref()
                        .and_then(|r| r.next_turn_at)
                        .unwrap_or_else(|| Utc::now() + interval);
                    let change = RecordChange {
                        observed_state: Some(ObservedState::Running.as_str()),
                        container_id: Some(Some(container_id.clone())),
                        endpoint: Some(Some(endpoint.clone())),
                        current_turn: Some(*turn),
                        next_turn_at: Some(Some(next)),
                        last_error: Some(None),
                        last_reconciled_at: Some(Some(Utc::now())),
                        ..RecordChange::default()
                    };
                    let extra = json!({"turn": turn, "container_id": container_id, "duration_ms": elapsed_ms});
                    let record = conn
                        .transaction(async move |c| {
                                let r = db::update_record(c, game_id, change).await?;
                                db::finish_operation(c, op, Outcome::Succeeded, None, &extra)
                                    .await?;
                                Ok::<_, diesel::result::Error>(r)
                            })
                        .await?;
                    self.cache(record);
                }
                Err(failure) => {
                    let text = failure.to_string();
                    let change = RecordChange {
                        observed_state: Some(ObservedState::Failed.as_str()),
                        container_id: Some(None),
                        endpoint: Some(None),
                        last_error: Some(Some(text)),
                        ..RecordChange::default()
                    };
                    let reason = failure.reason.clone();
                    let extra = json!({"failure": failure.kind.notification_kind(), "duration_ms": elapsed_ms});
                    let record = conn
                        .transaction(async move |c| {
                                let r = db::update_record(c, game_id, change).await?;
                                db::finish_operation(c, op, Outcome::Failed, Some(&reason), &extra)
                                    .await?;
                                Ok::<_, diesel::result::Error>(r)
                            })
                        .await?;
                    self.cache(record);
                }
            }
            Ok::<_, RuntimeError>(())
        }
        .await;
        if let Err(e) = result {
            // The op stays `running`; the next boot fails it, and the
            // reconciler converges the record from Docker's view.
            tracing::error!(%game_id, %op, error = %e, "cannot record the outcome of an engine start");
        }
        match outcome {
            Ok(_) => {
                tracing::info!(%game_id, ?how, elapsed_ms, "engine running");
                self.inner.events.engine_running(game_id).await;
                true
            }
            Err(failure) => {
                tracing::warn!(%game_id, ?how, failure = %failure, "engine failed to start");
                self.inner.events.engine_failed(game_id, failure).await;
                false
            }
        }
    }

    fn turn_interval(&self, game_id: Uuid) -> chrono::Duration {
        let secs = read(&self.inner.requests)
            .get(&game_id)
            .map(|r| r.turn_interval_seconds)
            .unwrap_or(3600);
        chrono::Duration::seconds(i64::from(secs.max(1)))
    }

    /// Image (per pull policy), volume, a fresh container, health.
    async fn try_bring_up(&self, game_id: Uuid) -> Result<(String, String, i32), EngineFailure> {
        let fail = |kind, reason: String| EngineFailure { kind, reason };
        let record = self.record(game_id).ok_or_else(|| {
            fail(
                EngineFailureKind::ContainerStartFailed,
                "no runtime record".into(),
            )
        })?;
        let req = read(&self.inner.requests)
            .get(&game_id)
            .cloned()
            .ok_or_else(|| {
                fail(
                    EngineFailureKind::StartConfigInvalid,
                    "no start config is stored for this game".into(),
                )
            })?;
        let docker = self.docker();
        let image = record.image.as_str();

        let present = docker
            .image_present(image)
            .await
            .map_err(|e| fail(EngineFailureKind::ImagePullFailed, e))?;
        match (self.inner.settings.pull_policy, present) {
            (PullPolicy::Never, false) => {
                return Err(fail(
                    EngineFailureKind::ImagePullFailed,
                    format!("image {image} is not present and the pull policy is never"),
                ));
            }
            (PullPolicy::IfMissing, true) | (PullPolicy::Never, true) => {}
            (PullPolicy::Always, _) | (PullPolicy::IfMissing, false) => docker
                .pull(image)
                .await
                .map_err(|e| fail(EngineFailureKind::ImagePullFailed, e))?,
        }

        let start_failed = |e: String| fail(EngineFailureKind::ContainerStartFailed, e);
        docker.ensure_volume(game_id).await.map_err(start_failed)?;
        let name = docker::container_name(game_id);
        docker.remove(&name).await.map_err(start_failed)?;
        let container = EngineContainer {
            game_id,
            engine_version: &record.engine_version,
            image,
            start_config: req.start_config().to_string(),
        };
        let id = match docker.create_and_start(&container).await {
            Ok(id) => id,
            Err(e) => {
                let _ = docker.remove(&name).await;
                return Err(start_failed(e));
            }
        };

        let deadline = Instant::now() + self.inner.settings.start_timeout;
        loop {
            let state = docker.inspect(&id).await.map_err(start_failed)?;
            match state {
                None => {
                    return Err(start_failed(
                        "the container disappeared while starting".into(),
                    ));
                }
                Some(s) if !s.running => {
                    let code = s.exit_code.unwrap_or(-1);
                    let tail = docker.stderr_tail(&id).await;
                    let _ = docker.remove(&id).await;
                    let reason = if tail.is_empty() {
                        format!("the engine exited with code {code}")
                    } else {
                        format!("the engine exited with code {code}: {tail}")
                    };
                    let kind = if code == 78 {
                        EngineFailureKind::StartConfigInvalid
                    } else {
                        EngineFailureKind::ContainerStartFailed
                    };
                    return Err(fail(kind, reason));
                }
                Some(s) => {
                    if let Some(ip) = s.ip {
                        let endpoint = format!("http://{ip}:{}", docker::ENGINE_PORT);
                        if self.inner.engine.healthy(&endpoint).await {
                            let turn = self
                                .inner
                                .engine
                                .current_turn(&endpoint)
                                .await
                                .map_err(|e| start_failed(e.to_string()))?;
                            return Ok((id, endpoint, turn));
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                let _ = docker.stop_and_remove(&id).await;
                return Err(start_failed(format!(
                    "no healthy answer within {:?}",
                    self.inner.settings.start_timeout
                )));
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    async fn run_stop(&self, game_id: Uuid, op: Uuid) {
        let name = docker::container_name(game_id);
        let outcome = self.docker().stop_and_remove(&name).await;
        let result = async {
            let mut conn = self.conn().await?;
            let (change, outcome, error) = match &outcome {
                Ok(()) => (
                    RecordChange {
                        observed_state: Some(ObservedState::Absent.as_str()),
                        container_id: Some(None),
                        endpoint: Some(None),
                        ..RecordChange::default()
                    },
                    Outcome::Succeeded,
                    None,
                ),
                Err(e) => (
                    RecordChange {
                        last_error: Some(Some(e.clone())),
                        ..RecordChange::default()
                    },
                    Outcome::Failed,
                    Some(e.clone()),
                ),
            };
            let record = conn
                .transaction(async move |c| {
                    let r = db::update_record(c, game_id, change).await?;
                    db::finish_operation(c, op, outcome, error.as_deref(), &json!({})).await?;
                    Ok::<_, diesel::result::Error>(r)
                })
                .await?;
            self.cache(record);
            Ok::<_, RuntimeError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(%game_id, %op, error = %e, "cannot record the outcome of a stop");
        }
    }

    // ---- turn scheduler -------------------------------------------------

    /// One scheduler tick: every due game gets exactly one turn. Returns the
    /// number of turns generated.
    pub async fn tick_once(&self) -> Result<usize, RuntimeError> {
        let due = {
            let mut conn = self.conn().await?;
            db::due_games(&mut conn, 500).await?
        };
        let now = Instant::now();
        let due: Vec<Uuid> = {
            let backoff = self
                .inner
                .turn_backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            due.into_iter()
                .filter(|id| backoff.get(id).is_none_or(|(_, at)| *at <= now))
                .collect()
        };
        let results: Vec<_> = futures_util::stream::iter(due)
            .map(|game_id| async move { (game_id, self.run_turn(game_id).await) })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut generated = 0;
        for (game_id, r) in results {
            let mut backoff = self
                .inner
                .turn_backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match r {
                Ok(Some(_)) => {
                    generated += 1;
                    backoff.remove(&game_id);
                }
                Ok(None) => {}
                Err(e) => {
                    let failures = backoff.get(&game_id).map_or(1, |(n, _)| n + 1);
                    let delay =
                        galaxy_queue::Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
                            .delay(failures);
                    backoff.insert(game_id, (failures, Instant::now() + delay));
                    tracing::warn!(%game_id, error = %e, failures, "turn generation failed");
                }
            }
        }
        Ok(generated)
    }

    /// Claims the record (row lock, skipping one held elsewhere), asks the
    /// engine for exactly the next turn, records it and consumes the flag,
    /// all in one transaction.
    async fn run_turn(&self, game_id: Uuid) -> Result<Option<(i32, bool)>, RuntimeError> {
        let interval = self.turn_interval(game_id);
        let engine = self.inner.engine.clone();
        let mut conn = self.conn().await?;
        let outcome = conn
            .transaction(async move |c| {
                let Some(record) = db::claim_due(c, game_id).await? else {
                    return Ok::<_, RuntimeError>(Ok(None));
                };
                let forced = record.skip_next_wait;
                let Some(endpoint) = record.endpoint.clone() else {
                    return Ok(Err((
                        record,
                        RuntimeError::EngineUnavailable("no endpoint".into()),
                    )));
                };
                let wanted = record.current_turn + 1;
                let started = Instant::now();
                match engine.generate_turn(&endpoint, wanted).await {
                    Ok(turn) => {
                        let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
                        db::insert_turn(c, game_id, turn, ms, forced).await?;
                        let r = db::update_record(
                            c,
                            game_id,
                            RecordChange {
                                current_turn: Some(turn),
                                skip_next_wait: Some(false),
                                next_turn_at: Some(Some(Utc::now() + interval)),
                                last_error: Some(None),
                                ..RecordChange::default()
                            },
                        )
                        .await?;
                        if forced {
                            db::finish_force_ops(
                                c,
                                game_id,
                                Outcome::Succeeded,
                                None,
                                &json!({"turn": turn}),
                            )
                            .await?;
                        }
                        Ok(Ok(Some((r, turn, forced))))
                    }
                    Err(e) => {
                        // A forced turn is one attempt: its operation
                        // fails and the flag is cleared; the regular
                        // schedule retries with backoff.
                        let text = format!("turn {wanted}: {e}");
                        let mut change = RecordChange {
                            last_error: Some(Some(text.clone())),
                            ..RecordChange::default()
                        };
                        if forced {
                            change.skip_next_wait = Some(false);
                            db::finish_force_ops(
                                c,
                                game_id,
                                Outcome::Failed,
                                Some(&text),
                                &json!({}),
                            )
                            .await?;
                        }
                        // The engine may be ahead (an answer lost earlier):
                        // adopt its turn so the next request matches.
                        if let Ok(t) = engine.current_turn(&endpoint).await {
                            change.current_turn = Some(t);
                        }
                        let r = db::update_record(c, game_id, change).await?;
                        Ok(Err((r, e)))
                    }
                }
            })
            .await?;
        match outcome {
            Ok(Some((record, turn, forced))) => {
                self.cache(record);
                self.inner
                    .events
                    .turn_generated(game_id, u32::try_from(turn).unwrap_or(0), forced)
                    .await;
                Ok(Some((turn, forced)))
            }
            Ok(None) => Ok(None),
            Err((record, e)) => {
                self.cache(record);
                Err(e)
            }
        }
    }

    // ---- reconciler -----------------------------------------------------

    /// One reconcile pass: converges Docker's labelled containers with the
    /// records. Restarts run concurrently and are awaited, so the pass is
    /// complete when this returns.
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, RuntimeError> {
        self.ensure_docker().await?;
        let docker = self.docker();
        let containers = docker.list_labelled().await.map_err(RuntimeError::Docker)?;
        let records = self.records();
        let mut report = ReconcileReport {
            containers: containers.len(),
            records: records.len(),
            ..ReconcileReport::default()
        };
        let mut by_game: HashMap<Uuid, Vec<&docker::LabelledContainer>> = HashMap::new();
        for c in &containers {
            match c.game_id {
                Some(id) if records.iter().any(|r| r.game_id == id) => {
                    by_game.entry(id).or_default().push(c)
                }
                _ => {
                    // No record: not ours to keep. Its volume stays (data
                    // is never deleted by the reconciler).
                    tracing::warn!(container = %c.name, "removing a labelled container with no runtime record");
                    match docker.stop_and_remove(&c.id).await {
                        Ok(()) => report.orphans_removed += 1,
                        Err(e) => {
                            tracing::warn!(container = %c.name, error = %e, "cannot remove orphan")
                        }
                    }
                }
            }
        }

        {
            let mut conn = self.conn().await?;
            let failed = db::fail_interrupted_operations(&mut conn, self.stale_before()).await?;
            if failed > 0 {
                tracing::warn!(failed, "failed runtime operations whose process stopped");
            }
        }

        let mut touched = Vec::new();
        let mut actions = Vec::new();
        for record in records {
            let game_id = record.game_id;
            // An operation in progress owns the game; look again next pass.
            let Ok(guard) = self.try_lock(game_id) else {
                continue;
            };
            let name = &record.container_name;
            let mine: Vec<_> = by_game.remove(&game_id).unwrap_or_default();
            let current = mine.iter().find(|c| &c.name == name).copied();
            // Duplicates under other names (should not happen) go.
            for extra in mine.iter().filter(|c| &c.name != name) {
                let _ = docker.stop_and_remove(&extra.id).await;
                report.orphans_removed += 1;
            }
            match record.desired_state {
                DesiredState::Running => {
                    if record.observed_state == ObservedState::Failed {
                        // A failed start waits for an operator (start or
                        // patch): retrying every pass would flood the admin
                        // channel with the same failure.
                        touched.push(game_id);
                        continue;
                    }
                    match current {
                        Some(c) if c.running => {
                            let endpoint =
                                c.ip.as_ref()
                                    .map(|ip| format!("http://{ip}:{}", docker::ENGINE_PORT));
                            let stale = record.observed_state != ObservedState::Running
                                || record.endpoint != endpoint
                                || record.container_id.as_deref() != Some(c.id.as_str());
                            if stale {
                                actions.push(Action::Refresh {
                                    guard,
                                    game_id,
                                    container_id: c.id.clone(),
                                    endpoint,
                                    was: record.observed_state,
                                });
                            } else {
                                touched.push(game_id);
                            }
                        }
                        other => {
                            let reason = match other {
                                Some(_) => "the engine container is not running",
                                None => "the engine container is missing",
                            };
                            actions.push(Action::Restart {
                                guard,
                                game_id,
                                reason,
                            });
                        }
                    }
                }
                DesiredState::Stopped => {
                    if current.is_some() {
                        actions.push(Action::Stop { guard, game_id });
                    } else if record.observed_state != ObservedState::Absent {
                        actions.push(Action::Refresh {
                            guard,
                            game_id,
                            container_id: String::new(),
                            endpoint: None,
                            was: record.observed_state,
                        });
                    } else {
                        touched.push(game_id);
                    }
                }
            }
        }

        if !touched.is_empty() {
            let mut conn = self.conn().await?;
            for r in db::touch_reconciled(&mut conn, &touched).await? {
                self.cache(r);
            }
        }

        let results: Vec<ActionDone> = futures_util::stream::iter(actions)
            .map(|a| self.apply(a))
            .buffer_unordered(8)
            .collect()
            .await;
        for r in results {
            match r {
                ActionDone::Restarted => report.restarted += 1,
                ActionDone::Stopped => report.stopped += 1,
                ActionDone::Refreshed => report.refreshed += 1,
                ActionDone::Failed => {}
            }
        }
        Ok(report)
    }

    async fn apply(&self, action: Action) -> ActionDone {
        match action {
            Action::Restart {
                guard,
                game_id,
                reason,
            } => {
                let _guard = guard;
                let op = async {
                    let mut conn = self.conn().await?;
                    let req = read(&self.inner.requests).get(&game_id).cloned();
                    let details = json!({"request": req, "reason": reason});
                    let change = RecordChange {
                        observed_state: Some(ObservedState::Starting.as_str()),
                        endpoint: Some(None),
                        ..RecordChange::default()
                    };
                    let (op, record) = conn
                        .transaction(async move |c| {
                            let op = db::insert_operation(
                                c,
                                game_id,
                                OperationKind::Start,
                                "system",
                                &details,
                            )
                            .await?;
                            let r = db::update_record(c, game_id, change).await?;
                            Ok::<_, diesel::result::Error>((op, r))
                        })
                        .await?;
                    self.cache(record);
                    Ok::<_, RuntimeError>(op)
                }
                .await;
                match op {
                    Ok(op) => {
                        tracing::info!(%game_id, reason, "reconciler restarts an engine");
                        if self.bring_up(game_id, op, BringUp::Start).await {
                            ActionDone::Restarted
                        } else {
                            ActionDone::Failed
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%game_id, error = %e, "cannot begin a restart");
                        ActionDone::Failed
                    }
                }
            }
            Action::Stop { guard, game_id } => {
                let _guard = guard;
                let op = async {
                    let mut conn = self.conn().await?;
                    Ok::<_, RuntimeError>(
                        db::insert_operation(
                            &mut conn,
                            game_id,
                            OperationKind::Stop,
                            "system",
                            &json!({"reason": "the record should be stopped"}),
                        )
                        .await?,
                    )
                }
                .await;
                match op {
                    Ok(op) => {
                        self.run_stop(game_id, op).await;
                        ActionDone::Stopped
                    }
                    Err(e) => {
                        tracing::warn!(%game_id, error = %e, "cannot begin a stop");
                        ActionDone::Failed
                    }
                }
            }
            Action::Refresh {
                guard,
                game_id,
                container_id,
                endpoint,
                was,
            } => {
                let _guard = guard;
                let running = endpoint.is_some();
                // A record left `starting` by a crash only turns `running`
                // when the engine really answers.
                if running && was != ObservedState::Running {
                    let healthy = match &endpoint {
                        Some(e) => self.inner.engine.healthy(e).await,
                        None => false,
                    };
                    if !healthy {
                        return ActionDone::Failed;
                    }
                }
                let change = if running {
                    RecordChange {
                        observed_state: Some(ObservedState::Running.as_str()),
                        container_id: Some(Some(container_id)),
                        endpoint: Some(endpoint),
                        last_reconciled_at: Some(Some(Utc::now())),
                        ..RecordChange::default()
                    }
                } else {
                    RecordChange {
                        observed_state: Some(ObservedState::Absent.as_str()),
                        container_id: Some(None),
                        endpoint: Some(None),
                        last_reconciled_at: Some(Some(Utc::now())),
                        ..RecordChange::default()
                    }
                };
                let updated = async {
                    let mut conn = self.conn().await?;
                    Ok::<_, RuntimeError>(db::update_record(&mut conn, game_id, change).await?)
                }
                .await;
                match updated {
                    Ok(r) => {
                        self.cache(r);
                        if running && was != ObservedState::Running {
                            self.inner.events.engine_running(game_id).await;
                        }
                        ActionDone::Refreshed
                    }
                    Err(e) => {
                        tracing::warn!(%game_id, error = %e, "cannot refresh a record");
                        ActionDone::Failed
                    }
                }
            }
        }
    }

    /// The reconciler and the turn scheduler as periodic workers.
    pub fn spawn_workers(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let reconciler = {
            let this = self.clone();
            tokio::spawn(galaxy_queue::run_periodic(
                "runtime_reconciler",
                self.inner.settings.reconcile_interval,
                shutdown.clone(),
                move || {
                    let this = this.clone();
                    async move {
                        let r = this.reconcile_once().await?;
                        Ok::<_, RuntimeError>(galaxy_queue::BatchOutcome {
                            processed: r.restarted + r.stopped + r.orphans_removed + r.refreshed,
                            full: false,
                        })
                    }
                },
            ))
        };
        let scheduler = {
            let this = self.clone();
            tokio::spawn(galaxy_queue::run_periodic(
                "runtime_turn_scheduler",
                self.inner.settings.turn_tick_interval,
                shutdown.clone(),
                move || {
                    let this = this.clone();
                    async move {
                        let n = this.tick_once().await?;
                        Ok::<_, RuntimeError>(galaxy_queue::BatchOutcome {
                            processed: n,
                            full: false,
                        })
                    }
                },
            ))
        };
        vec![reconciler, scheduler]
    }
}

enum Action {
    Restart {
        guard: OwnedMutexGuard<()>,
        game_id: Uuid,
        reason: &'static str,
    },
    Stop {
        guard: OwnedMutexGuard<()>,
        game_id: Uuid,
    },
    Refresh {
        guard: OwnedMutexGuard<()>,
        game_id: Uuid,
        container_id: String,
        endpoint: Option<String>,
        was: ObservedState,
    },
}

enum ActionDone {
    Restarted,
    Stopped,
    Refreshed,
    Failed,
}

fn is_active(r: &RuntimeRecord) -> bool {
    r.desired_state == DesiredState::Running
        && matches!(
            r.observed_state,
            ObservedState::Running | ObservedState::Starting
        )
}

#[async_trait]
impl RuntimeService for Runtime {
    async fn start_game(&self, req: StartRequest, actor: Actor) -> Result<Uuid, RuntimeError> {
        if req.turn_interval_seconds == 0 {
            return Err(RuntimeError::Invalid {
                field: "turn_interval_seconds",
                message: "must be at least 1".into(),
            });
        }
        let version = self.usable_version(&req.engine_version)?;
        let guard = self.try_lock(req.game_id)?;
        if self.record(req.game_id).is_some_and(|r| is_active(&r)) {
            return Err(RuntimeError::AlreadyRunning);
        }
        self.begin_start(guard, req, version, actor, "start requested")
            .await
    }

    async fn restart_game(&self, game_id: Uuid, actor: Actor) -> Result<Uuid, RuntimeError> {
        let record = self
            .record(game_id)
            .ok_or(RuntimeError::NoRecord(game_id))?;
        let req = read(&self.inner.requests)
            .get(&game_id)
            .cloned()
            .ok_or(RuntimeError::NoRecord(game_id))?;
        let version = self.usable_version(&record.engine_version)?;
        let guard = self.try_lock(game_id)?;
        if self.record(game_id).is_some_and(|r| is_active(&r)) {
            return Err(RuntimeError::AlreadyRunning);
        }
        self.begin_start(guard, req, version, actor, "restart requested")
            .await
    }

    async fn stop_game(&self, game_id: Uuid, actor: Actor) -> Result<Uuid, RuntimeError> {
        self.record(game_id)
            .ok_or(RuntimeError::NoRecord(game_id))?;
        let guard = self.try_lock(game_id)?;
        let mut conn = self.conn().await?;
        let (op, record) = conn
            .transaction(async move |c| {
                let op = db::insert_operation(
                    c,
                    game_id,
                    OperationKind::Stop,
                    &actor.as_log_value(),
                    &json!({}),
                )
                .await?;
                // A pending force-next-turn can no longer happen.
                db::finish_force_ops(
                    c,
                    game_id,
                    Outcome::Failed,
                    Some("the engine was stopped before the forced turn"),
                    &json!({}),
                )
                .await?;
                let r = db::update_record(
                    c,
                    game_id,
                    RecordChange {
                        desired_state: Some(DesiredState::Stopped.as_str()),
                        skip_next_wait: Some(false),
                        ..RecordChange::default()
                    },
                )
                .await?;
                Ok::<_, diesel::result::Error>((op, r))
            })
            .await?;
        drop(conn);
        self.cache(record);
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            this.run_stop(game_id, op).await;
        });
        Ok(op)
    }

    async fn patch_game(
        &self,
        game_id: Uuid,
        engine_version: &str,
        actor: Actor,
    ) -> Result<Uuid, RuntimeError> {
        let version = self.usable_version(engine_version)?;
        let record = self
            .record(game_id)
            .ok_or(RuntimeError::NoRecord(game_id))?;
        if record.desired_state != DesiredState::Running {
            return Err(RuntimeError::NotRunning);
        }
        let guard = self.try_lock(game_id)?;
        let details = json!({
            "from_version": record.engine_version,
            "to_version": version.version,
            "image": version.image,
        });
        let mut conn = self.conn().await?;
        let (op, record) = conn
            .transaction(async move |c| {
                let op = db::insert_operation(
                    c,
                    game_id,
                    OperationKind::Patch,
                    &actor.as_log_value(),
                    &details,
                )
                .await?;
                let r = db::update_record(
                    c,
                    game_id,
                    RecordChange {
                        observed_state: Some(ObservedState::Starting.as_str()),
                        engine_version: Some(version.version.clone()),
                        image: Some(version.image.clone()),
                        endpoint: Some(None),
                        last_error: Some(None),
                        ..RecordChange::default()
                    },
                )
                .await?;
                Ok::<_, diesel::result::Error>((op, r))
            })
            .await?;
        drop(conn);
        self.cache(record);
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            this.bring_up(game_id, op, BringUp::Patch).await;
        });
        Ok(op)
    }

    async fn force_next_turn(&self, game_id: Uuid, actor: Actor) -> Result<Uuid, RuntimeError> {
        let record = self
            .record(game_id)
            .ok_or(RuntimeError::NoRecord(game_id))?;
        if record.desired_state != DesiredState::Running
            || record.observed_state != ObservedState::Running
        {
            return Err(RuntimeError::NotRunning);
        }
        let mut conn = self.conn().await?;
        let (op, record) = conn
            .transaction(async move |c| {
                let op = db::insert_operation(
                    c,
                    game_id,
                    OperationKind::ForceNextTurn,
                    &actor.as_log_value(),
                    &json!({}),
                )
                .await?;
                let r = db::update_record(
                    c,
                    game_id,
                    RecordChange {
                        skip_next_wait: Some(true),
                        ..RecordChange::default()
                    },
                )
                .await?;
                Ok::<_, diesel::result::Error>((op, r))
            })
            .await?;
        self.cache(record);
        Ok(op)
    }

    fn record(&self, game_id: Uuid) -> Option<RuntimeRecord> {
        read(&self.inner.records).get(&game_id).cloned()
    }

    fn records(&self) -> Vec<RuntimeRecord> {
        let mut all: Vec<_> = read(&self.inner.records).values().cloned().collect();
        all.sort_by_key(|r| r.game_id);
        all
    }

    async fn operations(
        &self,
        game_id: Uuid,
        page: Page,
    ) -> Result<Paged<Operation>, RuntimeError> {
        let mut conn = self.conn().await?;
        let (items, total) =
            db::operations(&mut conn, game_id, page.offset(), page.limit()).await?;
        Ok(Paged::new(items, page, total))
    }

    async fn turns(&self, game_id: Uuid) -> Result<Vec<GameTurn>, RuntimeError> {
        let mut conn = self.conn().await?;
        Ok(db::turns(&mut conn, game_id).await?)
    }

    async fn engine_report(
        &self,
        game_id: Uuid,
        race: &str,
        turn: Option<u32>,
    ) -> Result<Value, RuntimeError> {
        let endpoint = self.running_endpoint(game_id)?;
        self.inner.engine.report(&endpoint, race, turn).await
    }

    async fn submit_orders(
        &self,
        game_id: Uuid,
        race: &str,
        orders: Value,
    ) -> Result<(), RuntimeError> {
        let endpoint = self.running_endpoint(game_id)?;
        self.inner
            .engine
            .submit_orders(&endpoint, race, &orders)
            .await
    }

    fn versions(&self) -> Vec<EngineVersion> {
        read(&self.inner.versions).clone()
    }

    fn version(&self, version: &str) -> Option<EngineVersion> {
        read(&self.inner.versions)
            .iter()
            .find(|v| v.version == version)
            .cloned()
    }

    fn newest_active_version(&self) -> Option<EngineVersion> {
        read(&self.inner.versions)
            .iter()
            .filter(|v| v.status == EngineVersionStatus::Active)
            .max_by_key(|v| v.created_at)
            .cloned()
    }

    async fn create_version(
        &self,
        version: &str,
        image: &str,
    ) -> Result<EngineVersion, RuntimeError> {
        let mut conn = self.conn().await?;
        let created = db::insert_version(&mut conn, version, image)
            .await?
            .ok_or_else(|| RuntimeError::VersionExists(version.to_owned()))?;
        write(&self.inner.versions).push(created.clone());
        Ok(created)
    }

    async fn set_version_status(
        &self,
        version: &str,
        status: EngineVersionStatus,
    ) -> Result<EngineVersion, RuntimeError> {
        let mut conn = self.conn().await?;
        let updated = db::set_version_status(&mut conn, version, status)
            .await?
            .ok_or_else(|| RuntimeError::UnknownVersion(version.to_owned()))?;
        let mut versions = write(&self.inner.versions);
        if let Some(v) = versions.iter_mut().find(|v| v.version == version) {
            *v = updated.clone();
        }
        Ok(updated)
    }
}

impl Runtime {
    fn running_endpoint(&self, game_id: Uuid) -> Result<String, RuntimeError> {
        let record = self.record(game_id).ok_or(RuntimeError::NotRunning)?;
        match (record.observed_state, record.endpoint) {
            (ObservedState::Running, Some(e)) => Ok(e),
            _ => Err(RuntimeError::NotRunning),
        }
    }
}
