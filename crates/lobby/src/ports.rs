//! What the lobby needs from its neighbours. The lobby owns these small
//! traits; the binary implements them with adapters over the runtime,
//! notification and user modules, so this crate depends on none of them.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use diesel_async::AsyncPgConnection;
use galaxy_core::ApiError;
use serde::Serialize;
use uuid::Uuid;

use crate::model::{Game, TurnInfo};

/// One player handed to the engine's start config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartPlayer {
    pub account_id: Uuid,
    pub race_name: String,
}

/// Everything the runtime needs to start a game's engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameStartSpec {
    pub game_id: Uuid,
    pub engine_version: String,
    pub players: Vec<StartPlayer>,
    pub settings: serde_json::Value,
    pub turn_interval_seconds: u32,
}

/// The runtime did not accept a start request. Failures *after* acceptance
/// arrive through [`crate::LobbyEvents::engine_failed`]. Either way the game
/// goes back to `open`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// Transient (its database or Docker is unreachable, another operation
    /// is in progress) → 503; the owner retries later.
    #[error("runtime unavailable: {0}")]
    Unavailable(String),
    /// The runtime will not start this game as asked (e.g. its engine version
    /// was disabled meanwhile) → 409 `start_refused` with this reason.
    #[error("{0}")]
    Refused(String),
}

/// A call forwarded to a game's engine failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GameCallError {
    /// The engine refused the request (bad orders); the reason is shown to the player → 400.
    #[error("{0}")]
    Rejected(String),
    /// The engine knows no such thing (unknown race, future turn) → 404.
    #[error("{0}")]
    NotFound(String),
    /// The engine or runtime cannot answer now → 503.
    #[error("{0}")]
    Unavailable(String),
}

/// The runtime module, as the lobby sees it. Version lookups are synchronous
/// because the runtime answers them from its engine-version cache.
#[async_trait]
pub trait GameRuntime: Send + Sync + 'static {
    /// The newest `active` engine version (the default for new games).
    fn newest_active_version(&self) -> Option<String>;
    /// Whether `version` exists and is `active`.
    fn version_is_active(&self, version: &str) -> bool;
    /// Starts the game's engine. Returns once the start is accepted; the
    /// outcome is reported through `LobbyEvents::engine_running` /
    /// `engine_failed`. `actor` is the account that pressed start.
    async fn start(&self, spec: &GameStartSpec, actor: Uuid) -> Result<(), StartError>;
    /// The engine's current turn, from the runtime cache.
    fn current_turn(&self, game_id: Uuid) -> Option<u32>;
    /// The engine's report for `race` at `turn` (default: latest).
    async fn report(
        &self,
        game_id: Uuid,
        race: &str,
        turn: Option<u32>,
    ) -> Result<serde_json::Value, GameCallError>;
    /// Hands `orders` (a JSON array) to the engine, which validates them.
    async fn submit_orders(
        &self,
        game_id: Uuid,
        race: &str,
        orders: serde_json::Value,
    ) -> Result<(), GameCallError>;
    /// The game's turn history, oldest first.
    async fn turns(&self, game_id: Uuid) -> Result<Vec<TurnInfo>, GameCallError>;
}

/// What a notification written inside the lobby's transaction still does
/// once that transaction has committed (the immediate push). Dropping it
/// loses nothing: the notification's retry worker delivers what it wrote.
pub type AfterCommit = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Player notifications the lobby emits. Each is written on `conn`, inside
/// the transaction of the change it announces (decision HARD-14): both
/// commit or neither does, so a crash after the commit loses nothing. An
/// error rolls the change back.
#[async_trait]
pub trait LobbyNotifier: Send + Sync + 'static {
    /// `lobby.member_joined` to the game's other members (`game` as committed).
    async fn member_joined(
        &self,
        conn: &mut AsyncPgConnection,
        game: &Game,
        account_id: Uuid,
        race_name: &str,
    ) -> Result<AfterCommit, ApiError>;
    /// `lobby.game_started` to every member.
    async fn game_started(
        &self,
        conn: &mut AsyncPgConnection,
        game: &Game,
    ) -> Result<AfterCommit, ApiError>;
}

/// The user module's account cache.
pub trait AccountDirectory: Send + Sync + 'static {
    /// Whether the account exists and is `active` (not blocked or deleted).
    fn is_active(&self, account_id: Uuid) -> bool;
}
