//! The lobby's face: [`LobbyService`] (what the HTTP routes and other
//! callers use), [`LobbyEvents`] (the reactions it offers other modules),
//! and the commands and play of [`PgLobby`] behind the first.

use std::sync::Arc;

use async_trait::async_trait;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use galaxy_core::{Page, Paged};
use uuid::Uuid;

use crate::db::{self, GameRow, NewGameRow, Stamp};
use crate::error::LobbyError;
use crate::model::{CreateGame, Game, GameStatus, GameView, JoinGame, MemberRole, TurnInfo};
use crate::ports::{AfterCommit, GameStartSpec, StartPlayer};
use crate::state::{
    PgLobby, conflict_game_not_open, finish, mutate, mutate_with, race_taken, same_race,
};
use crate::validate::{to_i32, validate_create, validate_race};

/// The lobby's public face: what the HTTP routes (and any other caller) use.
/// Reads are answered from the cache; writes commit first, then update it.
#[async_trait]
pub trait LobbyService: Send + Sync + 'static {
    /// Games, newest first, optionally of one status.
    fn list_games(&self, status: Option<GameStatus>, page: Page) -> Paged<GameView>;
    /// One game with its current members, from the cache.
    fn game(&self, id: Uuid) -> Option<Arc<Game>>;
    /// The JSON view of one game (with the engine's current turn).
    fn game_view(&self, id: Uuid) -> Option<GameView>;
    /// Creates an `open` game whose creator is its owner member.
    async fn create_game(&self, owner: Uuid, req: CreateGame) -> Result<GameView, LobbyError>;
    async fn join_game(
        &self,
        game_id: Uuid,
        account_id: Uuid,
        req: JoinGame,
    ) -> Result<GameView, LobbyError>;
    async fn leave_game(&self, game_id: Uuid, account_id: Uuid) -> Result<(), LobbyError>;
    /// `open` → `starting` and hands the game to the runtime.
    async fn start_game(&self, game_id: Uuid, account_id: Uuid) -> Result<GameView, LobbyError>;
    /// `open` → `cancelled`.
    async fn cancel_game(&self, game_id: Uuid, account_id: Uuid) -> Result<GameView, LobbyError>;
    /// The engine's report for the caller's race.
    async fn report(
        &self,
        game_id: Uuid,
        account_id: Uuid,
        turn: Option<u32>,
    ) -> Result<serde_json::Value, LobbyError>;
    /// Forwards the caller's orders to the engine.
    async fn submit_orders(
        &self,
        game_id: Uuid,
        account_id: Uuid,
        orders: Vec<serde_json::Value>,
    ) -> Result<(), LobbyError>;
    async fn turns(&self, game_id: Uuid, account_id: Uuid) -> Result<Vec<TurnInfo>, LobbyError>;
}

/// Reactions to other modules' events, wired by the binary: the runtime
/// reports engine health, the user module reports deletions. Each returns
/// whether it changed anything (repeats and late reports are harmless no-ops).
#[async_trait]
pub trait LobbyEvents: Send + Sync + 'static {
    /// The engine answered healthy: `starting` → `running`, `started_at` set,
    /// then `lobby.game_started` to every member.
    async fn engine_running(&self, game_id: Uuid) -> Result<bool, LobbyError>;
    /// An operator stopped the engine: `running` → `paused` (orders answer
    /// 409 until it runs again; `engine_running` then moves it back to
    /// `running`, without a second `lobby.game_started`).
    async fn engine_stopped(&self, game_id: Uuid) -> Result<bool, LobbyError>;
    /// The engine could not be started: `starting` → `open` (decision
    /// LOBBY-1), so the owner can start again or cancel.
    async fn engine_failed(&self, game_id: Uuid, reason: &str) -> Result<bool, LobbyError>;
    /// The account was deleted: it leaves every `open` game; `open` games it
    /// owns are cancelled (decision LOBBY-2). Returns how many games changed.
    async fn user_deleted(&self, account_id: Uuid) -> Result<usize, LobbyError>;
}

#[async_trait]
impl LobbyService for PgLobby {
    fn list_games(&self, status: Option<GameStatus>, page: Page) -> Paged<GameView> {
        let (games, total) = self.cache.list(status, page);
        Paged::new(games.iter().map(|g| self.view(g)).collect(), page, total)
    }

    fn game(&self, id: Uuid) -> Option<Arc<Game>> {
        self.cache.get(id)
    }

    fn game_view(&self, id: Uuid) -> Option<GameView> {
        self.cache.get(id).map(|g| self.view(&g))
    }

    #[tracing::instrument(skip(self, req), fields(game_id))]
    async fn create_game(&self, owner: Uuid, req: CreateGame) -> Result<GameView, LobbyError> {
        let settings = validate_create(&req)?;
        self.require_active(owner)?;
        let version = match &req.engine_version {
            Some(v) if self.runtime.version_is_active(v) => v.clone(),
            Some(v) => return Err(LobbyError::EngineVersionUnavailable(v.clone())),
            None => self.runtime.newest_active_version().ok_or_else(|| {
                LobbyError::conflict(
                    "no_active_engine_version",
                    "no engine version is active; an operator must add or activate one",
                )
            })?,
        };
        let id = galaxy_core::new_id();
        tracing::Span::current().record("game_id", tracing::field::display(id));
        let row = NewGameRow {
            id,
            name: &req.name,
            owner_id: owner,
            engine_version: &version,
            min_players: to_i32(req.min_players),
            max_players: to_i32(req.max_players),
            turn_interval_seconds: to_i32(req.turn_interval_seconds),
            settings: &settings,
        };
        let race = req.race_name.as_str();
        let game = mutate!(self, id, async |c| {
            let game = db::insert_game(c, &row).await?;
            let owner_member = db::upsert_member(c, id, owner, race, MemberRole::Owner).await?;
            Ok(Some(game.into_game(vec![owner_member])?))
        })
        .ok_or(LobbyError::NotFound)?;
        tracing::info!(engine_version = %version, "game created");
        Ok(self.view(&game))
    }

    #[tracing::instrument(skip(self, req))]
    async fn join_game(
        &self,
        game_id: Uuid,
        account_id: Uuid,
        req: JoinGame,
    ) -> Result<GameView, LobbyError> {
        validate_race(&req.race_name)?;
        self.cached(game_id)?;
        self.require_active(account_id)?;
        let race = req.race_name.as_str();
        let (game, push) = mutate_with!(self, game_id, AfterCommit, async |c| {
            let row = db::lock_game(c, game_id)
                .await?
                .ok_or(LobbyError::NotFound)?;
            if row.status != GameStatus::Open.as_str() {
                return Err(conflict_game_not_open(&row.status));
            }
            let mut members = db::current_members(c, game_id).await?;
            if members.iter().any(|m| m.account_id == account_id) {
                return Err(LobbyError::conflict(
                    "already_member",
                    "you are already a member of this game",
                ));
            }
            if members.len() >= usize::try_from(row.max_players).unwrap_or(0) {
                return Err(LobbyError::conflict("game_full", "the game is full"));
            }
            if members.iter().any(|m| same_race(&m.race_name, race)) {
                return Err(LobbyError::conflict(
                    "race_name_taken",
                    "another member already uses this race name",
                ));
            }
            let m = db::upsert_member(c, game_id, account_id, race, MemberRole::Player)
                .await
                .map_err(race_taken)?;
            members.push(m);
            let game = row.into_game(members)?;
            // Announced in the join's transaction: a crash after the
            // commit cannot lose it (decision HARD-14).
            let push = self
                .notifier
                .member_joined(c, &game, account_id, race)
                .await
                .map_err(LobbyError::Notify)?;
            Ok(Some((game, push)))
        })
        .ok_or(LobbyError::NotFound)?;
        tracing::info!("member joined");
        galaxy_core::failpoint::hit("lobby.member_joined");
        push.await;
        Ok(self.view(&game))
    }

    #[tracing::instrument(skip(self))]
    async fn leave_game(&self, game_id: Uuid, account_id: Uuid) -> Result<(), LobbyError> {
        self.cached(game_id)?;
        mutate!(self, game_id, async |c| {
            let row = db::lock_game(c, game_id)
                .await?
                .ok_or(LobbyError::NotFound)?;
            let members = db::current_members(c, game_id).await?;
            if !members.iter().any(|m| m.account_id == account_id) {
                return Err(LobbyError::conflict(
                    "not_member",
                    "you are not a member of this game",
                ));
            }
            if row.owner_id == account_id {
                return Err(LobbyError::conflict(
                    "owner_cannot_leave",
                    "the owner cannot leave; cancel the game instead",
                ));
            }
            if row.status != GameStatus::Open.as_str() {
                return Err(conflict_game_not_open(&row.status));
            }
            db::mark_left(c, game_id, account_id).await?;
            let rest = members
                .into_iter()
                .filter(|m| m.account_id != account_id)
                .collect();
            Ok(Some(row.into_game(rest)?))
        });
        tracing::info!("member left");
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn start_game(&self, game_id: Uuid, account_id: Uuid) -> Result<GameView, LobbyError> {
        self.cached(game_id)?;
        let game = mutate!(self, game_id, async |c| {
            let row = lock_open_for_owner(c, game_id, account_id, "start").await?;
            let members = db::current_members(c, game_id).await?;
            if members.len() < usize::try_from(row.min_players).unwrap_or(usize::MAX) {
                return Err(LobbyError::conflict(
                    "not_enough_players",
                    format!(
                        "the game needs at least {} players; it has {}",
                        row.min_players,
                        members.len()
                    ),
                ));
            }
            let row = db::transition(c, game_id, "open", "starting", Stamp::None)
                .await?
                .ok_or_else(|| conflict_game_not_open("changing"))?;
            Ok(Some(row.into_game(members)?))
        })
        .ok_or(LobbyError::NotFound)?;
        let spec = GameStartSpec {
            game_id,
            engine_version: game.engine_version.clone(),
            players: game
                .members
                .iter()
                .map(|m| StartPlayer {
                    account_id: m.account_id,
                    race_name: m.race_name.clone(),
                })
                .collect(),
            settings: game.settings.clone(),
            turn_interval_seconds: game.turn_interval_seconds,
        };
        // The lock is released: the runtime may report back (engine_running)
        // before `start` returns.
        if let Err(e) = self.runtime.start(&spec, account_id).await {
            // The runtime never took the request: reopen so the owner can retry.
            self.back_to_open(game_id, &e.to_string()).await?;
            return Err(e.into());
        }
        tracing::info!("game starting");
        let now = self.cache.get(game_id).unwrap_or(game);
        Ok(self.view(&now))
    }

    #[tracing::instrument(skip(self))]
    async fn cancel_game(&self, game_id: Uuid, account_id: Uuid) -> Result<GameView, LobbyError> {
        self.cached(game_id)?;
        let game = mutate!(self, game_id, async |c| {
            lock_open_for_owner(c, game_id, account_id, "cancel").await?;
            let row = db::transition(c, game_id, "open", "cancelled", Stamp::FinishedAt)
                .await?
                .ok_or_else(|| conflict_game_not_open("changing"))?;
            finish(c, row).await.map(Some)
        })
        .ok_or(LobbyError::NotFound)?;
        tracing::info!("game cancelled");
        Ok(self.view(&game))
    }

    #[tracing::instrument(skip(self))]
    async fn report(
        &self,
        game_id: Uuid,
        account_id: Uuid,
        turn: Option<u32>,
    ) -> Result<serde_json::Value, LobbyError> {
        let (game, race) = self.member_race(game_id, account_id)?;
        if !game.status.has_engine() {
            return Err(LobbyError::conflict(
                "game_not_started",
                format!("the game is {}; it has no reports yet", game.status),
            ));
        }
        Ok(self.runtime.report(game_id, &race, turn).await?)
    }

    #[tracing::instrument(skip(self, orders), fields(orders = orders.len()))]
    async fn submit_orders(
        &self,
        game_id: Uuid,
        account_id: Uuid,
        orders: Vec<serde_json::Value>,
    ) -> Result<(), LobbyError> {
        let (game, race) = self.member_race(game_id, account_id)?;
        if game.status != GameStatus::Running {
            return Err(LobbyError::conflict(
                "game_not_running",
                format!(
                    "the game is {}; orders are accepted while it is running",
                    game.status
                ),
            ));
        }
        self.runtime
            .submit_orders(game_id, &race, serde_json::Value::Array(orders))
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn turns(&self, game_id: Uuid, account_id: Uuid) -> Result<Vec<TurnInfo>, LobbyError> {
        let (game, _) = self.member_race(game_id, account_id)?;
        if !game.status.has_engine() && game.status != GameStatus::Starting {
            // Never started: no engine, no history.
            return Ok(Vec::new());
        }
        Ok(self.runtime.turns(game_id).await?)
    }
}

/// Locks the game for an owner's command (`action`: start, cancel): only the
/// owner may give it, and only while the game is open.
async fn lock_open_for_owner(
    c: &mut AsyncPgConnection,
    game_id: Uuid,
    account_id: Uuid,
    action: &str,
) -> Result<GameRow, LobbyError> {
    let row = db::lock_game(c, game_id)
        .await?
        .ok_or(LobbyError::NotFound)?;
    if row.owner_id != account_id {
        return Err(LobbyError::forbidden(
            "not_owner",
            format!("only the game's owner can {action} it"),
        ));
    }
    if row.status != GameStatus::Open.as_str() {
        return Err(conflict_game_not_open(&row.status));
    }
    Ok(row)
}
