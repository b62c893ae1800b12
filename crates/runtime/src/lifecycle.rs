//! Engine lifecycle over the container driver: start (with its background
//! bring-up: image, volume, engine, health) and stop, each finishing its operation-log entry.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::AsyncConnection;
use serde_json::json;
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::db::{self, RecordChange};
use crate::driver::{EngineSpec, container_name};
use crate::error::RuntimeError;
use crate::model::{
    Actor, EngineFailure, EngineFailureKind, EngineVersion, ObservedState, OperationKind, Outcome,
    StartRequest,
};
use crate::service::RuntimeService;
use crate::settings::PullPolicy;
use crate::state::{BringUp, Runtime, read, write};

/// How long to wait between health probes of a starting engine.
const HEALTH_POLL: Duration = Duration::from_millis(200);

impl Runtime {
    /// Inserts the start operation and re-arms the record in one
    /// transaction, then runs the bring-up in the background.
    pub(crate) async fn begin_start(
        &self,
        guard: OwnedMutexGuard<()>,
        req: StartRequest,
        version: EngineVersion,
        actor: Actor,
        reason: &str,
    ) -> Result<Uuid, RuntimeError> {
        let game_id = req.game_id;
        let name = container_name(game_id);
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
    pub(crate) async fn bring_up(&self, game_id: Uuid, op: Uuid, how: BringUp) -> bool {
        let started = Instant::now();
        let outcome = self.try_bring_up(game_id).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
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

    /// Image (per pull policy), volume, a fresh container, health.
    pub(crate) async fn try_bring_up(
        &self,
        game_id: Uuid,
    ) -> Result<(String, String, i32), EngineFailure> {
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
        let driver = self.driver();
        let image = record.image.as_str();

        let present = driver
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
            (PullPolicy::Always, _) | (PullPolicy::IfMissing, false) => driver
                .pull(image)
                .await
                .map_err(|e| fail(EngineFailureKind::ImagePullFailed, e))?,
        }

        let start_failed = |e: String| fail(EngineFailureKind::ContainerStartFailed, e);
        driver.ensure_volume(game_id).await.map_err(start_failed)?;
        let name = container_name(game_id);
        driver.remove(&name).await.map_err(start_failed)?;
        let spec = EngineSpec {
            game_id,
            engine_version: &record.engine_version,
            image,
            start_config: req.start_config().to_string(),
        };
        let id = match driver.create_and_start(&spec).await {
            Ok(id) => id,
            Err(e) => {
                // The start already failed; a container left half-made is
                // removed by the next start or the reconciler.
                if let Err(cleanup) = driver.remove(&name).await {
                    tracing::warn!(%game_id, error = %cleanup, "cannot remove a container that failed to start");
                }
                return Err(start_failed(e));
            }
        };

        let deadline = Instant::now() + self.inner.settings.start_timeout;
        loop {
            let state = driver.inspect(&id).await.map_err(start_failed)?;
            match state {
                None => {
                    return Err(start_failed(
                        "the container disappeared while starting".into(),
                    ));
                }
                Some(s) if !s.running => {
                    let code = s.exit_code.unwrap_or(-1);
                    let tail = driver.stderr_tail(&id).await;
                    if let Err(cleanup) = driver.remove(&id).await {
                        tracing::warn!(%game_id, error = %cleanup, "cannot remove an exited engine container");
                    }
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
                    if let Some(endpoint) = s.endpoint
                        && self.inner.engine.healthy(&endpoint).await
                    {
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
            if Instant::now() >= deadline {
                if let Err(cleanup) = driver.stop_and_remove(&id).await {
                    tracing::warn!(%game_id, error = %cleanup, "cannot remove an engine that never answered healthy");
                }
                return Err(start_failed(format!(
                    "no healthy answer within {:?}",
                    self.inner.settings.start_timeout
                )));
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    pub(crate) async fn run_stop(&self, game_id: Uuid, op: Uuid) {
        let name = container_name(game_id);
        let outcome = self.driver().stop_and_remove(&name).await;
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
}
