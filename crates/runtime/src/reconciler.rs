//! The reconciler: converges the driver's labelled engines with the records
//! (restart what should run, stop what should not, remove orphans, refresh
//! endpoints).

use std::collections::HashMap;

use chrono::Utc;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::db::{self, RecordChange};
use crate::driver::LabelledEngine;
use crate::error::RuntimeError;
use crate::model::{DesiredState, ObservedState, OperationKind};
use crate::service::RuntimeService;
use crate::state::{BringUp, Runtime, read};

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

impl Runtime {
    /// One reconcile pass: converges the driver's labelled engines with the
    /// records. Restarts run concurrently and are awaited, so the pass is
    /// complete when this returns.
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, RuntimeError> {
        self.ensure_driver().await?;
        let driver = self.driver();
        // Containers first, then the records from the database (never the
        // cache): a peer writes a game's record before it creates the
        // container, so every container listed here has its record in the
        // read that follows, and a peer's new engine is never an orphan.
        let containers = driver.list_labelled().await.map_err(RuntimeError::Driver)?;
        let records = self.refresh_from_database().await?;
        let mut report = ReconcileReport {
            containers: containers.len(),
            records: records.len(),
            ..ReconcileReport::default()
        };
        let mut by_game: HashMap<Uuid, Vec<&LabelledEngine>> = HashMap::new();
        for c in &containers {
            match c.game_id {
                Some(id) if records.iter().any(|r| r.game_id == id) => {
                    by_game.entry(id).or_default().push(c);
                }
                _ => {
                    // No record: not ours to keep. Its volume stays (data
                    // is never deleted by the reconciler).
                    tracing::warn!(container = %c.name, "removing a labelled container with no runtime record");
                    match driver.stop_and_remove(&c.id).await {
                        Ok(()) => report.orphans_removed += 1,
                        Err(e) => {
                            tracing::warn!(container = %c.name, error = %e, "cannot remove orphan");
                        }
                    }
                }
            }
        }

        let busy = {
            let mut conn = self.conn().await?;
            let failed = db::fail_interrupted_operations(&mut conn, self.stale_before()).await?;
            if failed > 0 {
                tracing::warn!(failed, "failed runtime operations whose process stopped");
            }
            db::games_with_running_operations(&mut conn, self.stale_before()).await?
        };

        let mut touched = Vec::new();
        let mut actions = Vec::new();
        for record in records {
            let game_id = record.game_id;
            // An operation in progress owns the game, in this process (its
            // lock) or in a peer (its open log entry); look again next pass.
            if busy.contains(&game_id) {
                continue;
            }
            let Ok(guard) = self.try_lock(game_id) else {
                continue;
            };
            // Under the game's lock the cache holds the newest record: the
            // database's, or a later write of this process.
            let record = self.record(game_id).unwrap_or(record);
            let name = &record.container_name;
            let mine: Vec<_> = by_game.remove(&game_id).unwrap_or_default();
            let current = mine.iter().find(|c| &c.name == name).copied();
            // Duplicates under other names (should not happen) go.
            for extra in mine.iter().filter(|c| &c.name != name) {
                match driver.stop_and_remove(&extra.id).await {
                    Ok(()) => report.orphans_removed += 1,
                    Err(e) => {
                        tracing::warn!(%game_id, container = %extra.id, error = %e, "cannot remove a duplicate engine container");
                    }
                }
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
                            let endpoint = c.endpoint.clone();
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
                    let req = read(&self.inner.requests).get(&game_id).cloned();
                    let details = json!({"request": req, "reason": reason});
                    let change = RecordChange {
                        observed_state: Some(ObservedState::Starting.as_str()),
                        endpoint: Some(None),
                        ..RecordChange::default()
                    };
                    self.logged_change(game_id, OperationKind::Start, "system", &details, change)
                        .await
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
