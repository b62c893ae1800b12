//! Adapters between modules. Each domain crate owns the small traits it
//! needs from its neighbours (ports) or emits reactions through (events);
//! this file is the only place that knows both sides, so no domain crate
//! depends on another across the layers.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use diesel_async::AsyncPgConnection;
use galaxy_core::ApiError;
use galaxy_lobby::{
    AccountDirectory, AfterCommit, Game, GameCallError, GameRuntime, GameStartSpec, LobbyEvents,
    LobbyNotifier, StartError, TurnInfo,
};
use galaxy_notification::{Intent, NotificationService, RecipientDirectory};
use galaxy_runtime::{
    Actor, EngineFailure, RuntimeError, RuntimeEvents, RuntimeService, StartPlayer, StartRequest,
};
use galaxy_user::{UserEvents, UserService};
use uuid::Uuid;

/// The user cache answers who may be reached and who is active.
pub struct Accounts(pub Arc<dyn UserService>);

impl RecipientDirectory for Accounts {
    fn email(&self, account_id: Uuid) -> Option<String> {
        self.0
            .account(account_id)
            .filter(|a| a.status == galaxy_user::AccountStatus::Active)
            .map(|a| a.email)
    }
}

impl AccountDirectory for Accounts {
    fn is_active(&self, account_id: Uuid) -> bool {
        self.0.is_active(account_id)
    }
}

/// A user deleted → their pending notifications skipped, their open games
/// left. Both are idempotent; an error makes the user module try the
/// whole reaction again later (decision HARD-15).
pub struct UserDeletedFanout {
    pub notifications: Arc<dyn NotificationService>,
    pub lobby: Arc<dyn LobbyEvents>,
}

#[async_trait]
impl UserEvents for UserDeletedFanout {
    async fn user_deleted(&self, account_id: Uuid) -> Result<(), ApiError> {
        // Both run even when the first fails: each is worth doing now.
        let skipped = self.notifications.on_user_deleted(account_id).await;
        let left = self.lobby.user_deleted(account_id).await;
        skipped?;
        left?;
        Ok(())
    }
}

/// Submits an intent; failures are logged, never propagated into the caller's
/// (already committed) operation.
async fn submit(notifications: &dyn NotificationService, intent: Intent) {
    let kind = intent.kind.clone();
    if let Err(e) = notifications.submit(intent).await {
        tracing::error!(kind, error = %e, "notification submit failed");
    }
}

/// Idempotency keys are at most 200 characters (cut on a character boundary).
/// Submits an intent inside the caller's transaction (`conn`); the push
/// runs once the caller has committed (decision HARD-14).
async fn submit_in(
    notifications: &Arc<dyn NotificationService>,
    conn: &mut AsyncPgConnection,
    intent: Intent,
) -> Result<AfterCommit, ApiError> {
    let pending = notifications.submit_in(conn, intent).await?;
    let notifications = Arc::clone(notifications);
    Ok(Box::pin(
        async move { notifications.dispatch(pending).await },
    ))
}

fn nothing() -> AfterCommit {
    Box::pin(async {})
}

/// The lobby's notifications, written in the lobby's transactions.
pub struct LobbyNotifications(pub Arc<dyn NotificationService>);

#[async_trait]
impl LobbyNotifier for LobbyNotifications {
    async fn member_joined(
        &self,
        conn: &mut AsyncPgConnection,
        game: &Game,
        account_id: Uuid,
        race_name: &str,
    ) -> Result<AfterCommit, ApiError> {
        let recipients: Vec<Uuid> = game
            .members
            .iter()
            .map(|m| m.account_id)
            .filter(|id| *id != account_id)
            .collect();
        if recipients.is_empty() {
            return Ok(nothing());
        }
        let joined_at = game.member(account_id).map(|m| m.joined_at);
        let intent = Intent::member_joined(
            game.id, &game.name, account_id, race_name, joined_at, recipients,
        );
        submit_in(&self.0, conn, intent).await
    }

    async fn game_started(
        &self,
        conn: &mut AsyncPgConnection,
        game: &Game,
    ) -> Result<AfterCommit, ApiError> {
        let recipients = game.members.iter().map(|m| m.account_id).collect();
        let intent = Intent::game_started(game.id, &game.name, game.started_at, recipients);
        submit_in(&self.0, conn, intent).await
    }
}

/// The lobby's view of the runtime.
pub struct LobbyRuntime(pub Arc<dyn RuntimeService>);

fn call_error(e: RuntimeError) -> GameCallError {
    match e {
        RuntimeError::EngineRejected(reason) => GameCallError::Rejected(reason),
        RuntimeError::EngineNotFound(reason) => GameCallError::NotFound(reason),
        RuntimeError::NoRecord(_) => GameCallError::NotFound("the game has no engine".to_owned()),
        other => GameCallError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl GameRuntime for LobbyRuntime {
    fn newest_active_version(&self) -> Option<String> {
        self.0.newest_active_version().map(|v| v.version)
    }

    fn version_is_active(&self, version: &str) -> bool {
        self.0
            .version(version)
            .is_some_and(|v| v.status == galaxy_runtime::EngineVersionStatus::Active)
    }

    async fn start(&self, spec: &GameStartSpec, actor: Uuid) -> Result<(), StartError> {
        let req = StartRequest {
            game_id: spec.game_id,
            engine_version: spec.engine_version.clone(),
            players: spec
                .players
                .iter()
                .map(|p| StartPlayer {
                    account_id: p.account_id,
                    race_name: p.race_name.clone(),
                })
                .collect(),
            settings: spec.settings.clone(),
            turn_interval_seconds: spec.turn_interval_seconds,
        };
        match self.0.start_game(req, Actor::Account(actor)).await {
            Ok(_operation) => Ok(()),
            Err(
                e @ (RuntimeError::UnknownVersion(_)
                | RuntimeError::VersionDisabled(_)
                | RuntimeError::AlreadyRunning
                | RuntimeError::Invalid { .. }),
            ) => Err(StartError::Refused(e.to_string())),
            Err(e) => Err(StartError::Unavailable(e.to_string())),
        }
    }

    fn current_turn(&self, game_id: Uuid) -> Option<u32> {
        self.0
            .record(game_id)
            .and_then(|r| u32::try_from(r.current_turn).ok())
    }

    async fn report(
        &self,
        game_id: Uuid,
        race: &str,
        turn: Option<u32>,
    ) -> Result<serde_json::Value, GameCallError> {
        self.0
            .engine_report(game_id, race, turn)
            .await
            .map_err(call_error)
    }

    async fn submit_orders(
        &self,
        game_id: Uuid,
        race: &str,
        orders: serde_json::Value,
    ) -> Result<(), GameCallError> {
        self.0
            .submit_orders(game_id, race, orders)
            .await
            .map_err(call_error)
    }

    async fn turns(&self, game_id: Uuid) -> Result<Vec<TurnInfo>, GameCallError> {
        let turns = self.0.turns(game_id).await.map_err(call_error)?;
        Ok(turns
            .into_iter()
            .map(|t| TurnInfo {
                turn_no: u32::try_from(t.turn_no).unwrap_or(0),
                generated_at: t.generated_at,
                duration_ms: u64::try_from(t.duration_ms).unwrap_or(0),
                forced: t.forced,
            })
            .collect())
    }
}

/// The runtime's reactions: the lobby moves the game, notifications go out.
/// The runtime is built before the lobby that consumes its events, so the
/// lobby and runtime handles are bound late.
#[derive(Default)]
pub struct RuntimeReactions {
    pub lobby: OnceLock<Arc<galaxy_lobby::PgLobby>>,
    pub runtime: OnceLock<Arc<dyn RuntimeService>>,
    pub notifications: OnceLock<Arc<dyn NotificationService>>,
}

impl RuntimeReactions {
    fn game(&self, game_id: Uuid) -> Option<Arc<Game>> {
        use galaxy_lobby::LobbyService;
        self.lobby.get().and_then(|l| l.game(game_id))
    }
}

#[async_trait]
impl RuntimeEvents for RuntimeReactions {
    async fn engine_running(&self, game_id: Uuid) {
        if let Some(lobby) = self.lobby.get()
            && let Err(e) = lobby.engine_running(game_id).await
        {
            tracing::error!(%game_id, error = %e, "lobby could not mark the game running");
        }
    }

    async fn engine_stopped(&self, game_id: Uuid) {
        if let Some(lobby) = self.lobby.get()
            && let Err(e) = lobby.engine_stopped(game_id).await
        {
            tracing::error!(%game_id, error = %e, "lobby could not mark the game paused");
        }
    }

    async fn engine_failed(&self, game_id: Uuid, failure: EngineFailure) {
        tracing::warn!(%game_id, kind = failure.kind.notification_kind(), reason = %failure.reason, "engine failed");
        if let Some(lobby) = self.lobby.get()
            && let Err(e) = lobby.engine_failed(game_id, &failure.reason).await
        {
            tracing::error!(%game_id, error = %e, "lobby could not record the failed start");
        }
        let Some(notifications) = self.notifications.get() else {
            return;
        };
        let record = self.runtime.get().and_then(|r| r.record(game_id));
        let (version, image) = record.map_or_else(
            || ("unknown".to_owned(), "unknown".to_owned()),
            |r| (r.engine_version, r.image),
        );
        let intent = Intent::engine_failed(
            failure.kind.notification_kind(),
            game_id,
            &version,
            &image,
            &failure.reason,
        );
        submit(notifications.as_ref(), intent).await;
    }

    async fn turn_generated(
        &self,
        conn: &mut AsyncPgConnection,
        game_id: Uuid,
        turn: u32,
        _forced: bool,
    ) -> Result<AfterCommit, ApiError> {
        let (Some(notifications), Some(game)) = (self.notifications.get(), self.game(game_id))
        else {
            // Only before the lobby is bound, or for a record without a game.
            return Ok(nothing());
        };
        let recipients = game.members.iter().map(|m| m.account_id).collect();
        let intent = Intent::turn_generated(game_id, &game.name, turn, recipients);
        submit_in(notifications, conn, intent).await
    }
}
