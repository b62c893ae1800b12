//! The runtime's face: the [`RuntimeService`] trait other modules and the
//! HTTP routes use, and its implementation on [`Runtime`] over the
//! lifecycle, scheduler and version operations.

use async_trait::async_trait;
use diesel_async::AsyncConnection;
use galaxy_core::{Page, Paged};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::{self, RecordChange};
use crate::error::RuntimeError;
use crate::model::{
    Actor, DesiredState, EngineVersion, EngineVersionStatus, GameTurn, ObservedState, Operation,
    OperationKind, Outcome, RuntimeRecord, StartRequest,
};
use crate::state::{BringUp, Runtime, is_active, read, write};

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
        let change = RecordChange {
            desired_state: Some(DesiredState::Stopped.as_str()),
            skip_next_wait: Some(false),
            ..RecordChange::default()
        };
        let (op, record) = conn
            .transaction(async move |c| {
                // A pending force-next-turn can no longer happen.
                db::finish_force_ops(
                    c,
                    game_id,
                    Outcome::Failed,
                    Some("the engine was stopped before the forced turn"),
                    &json!({}),
                )
                .await?;
                let actor = actor.as_log_value();
                db::log_and_update(c, game_id, OperationKind::Stop, &actor, &json!({}), change)
                    .await
            })
            .await?;
        drop(conn);
        self.cache(record);
        self.inner.events.engine_stopped(game_id).await;
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
        let change = RecordChange {
            observed_state: Some(ObservedState::Starting.as_str()),
            engine_version: Some(version.version),
            image: Some(version.image),
            endpoint: Some(None),
            last_error: Some(None),
            ..RecordChange::default()
        };
        let op = self
            .logged_change(
                game_id,
                OperationKind::Patch,
                &actor.as_log_value(),
                &details,
                change,
            )
            .await?;
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
        let change = RecordChange {
            skip_next_wait: Some(true),
            ..RecordChange::default()
        };
        self.logged_change(
            game_id,
            OperationKind::ForceNextTurn,
            &actor.as_log_value(),
            &json!({}),
            change,
        )
        .await
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
        Ok(db::operations(&mut conn, game_id, page).await?)
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

    pub(crate) fn usable_version(&self, version: &str) -> Result<EngineVersion, RuntimeError> {
        let v = self
            .version(version)
            .ok_or_else(|| RuntimeError::UnknownVersion(version.to_owned()))?;
        if v.status == EngineVersionStatus::Disabled {
            return Err(RuntimeError::VersionDisabled(version.to_owned()));
        }
        Ok(v)
    }
}
