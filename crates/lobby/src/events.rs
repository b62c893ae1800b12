//! The lobby's reactions to other modules' events ([`LobbyEvents`]):
//! engine running, stopped or failed, and a deleted account.

use std::sync::Arc;

use async_trait::async_trait;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::db::{self, Stamp};
use crate::error::LobbyError;
use crate::model::{Game, GameStatus};
use crate::ports::AfterCommit;
use crate::service::LobbyEvents;
use crate::state::{PgLobby, finish, mutate, mutate_with};

#[async_trait]
impl LobbyEvents for PgLobby {
    #[tracing::instrument(skip(self))]
    async fn engine_running(&self, game_id: Uuid) -> Result<bool, LobbyError> {
        let changed = mutate_with!(self, game_id, AfterCommit, async |c| {
            let Some(row) =
                db::transition(c, game_id, "starting", "running", Stamp::StartedAt).await?
            else {
                return Ok(None);
            };
            let game = finish(c, row).await?;
            // In the transition's transaction (decision HARD-14).
            let push = self
                .notifier
                .game_started(c, &game)
                .await
                .map_err(LobbyError::Notify)?;
            Ok(Some((game, push)))
        });
        let Some((_, push)) = changed else {
            // A paused game whose engine was restarted runs again.
            let resumed = mutate!(self, game_id, async |c| {
                match db::transition(c, game_id, "paused", "running", Stamp::None).await? {
                    Some(row) => finish(c, row).await.map(Some),
                    None => Ok(None),
                }
            });
            if resumed.is_some() {
                tracing::info!("game running again");
                return Ok(true);
            }
            tracing::info!("engine running reported for a game not starting or paused; ignored");
            return Ok(false);
        };
        tracing::info!("game running");
        galaxy_core::failpoint::hit("lobby.game_started");
        push.await;
        Ok(true)
    }

    #[tracing::instrument(skip(self))]
    async fn engine_stopped(&self, game_id: Uuid) -> Result<bool, LobbyError> {
        let paused = mutate!(self, game_id, async |c| {
            match db::transition(c, game_id, "running", "paused", Stamp::None).await? {
                Some(row) => finish(c, row).await.map(Some),
                None => Ok(None),
            }
        });
        if paused.is_some() {
            tracing::info!("engine stopped; game paused");
        }
        Ok(paused.is_some())
    }

    #[tracing::instrument(skip(self))]
    async fn engine_failed(&self, game_id: Uuid, reason: &str) -> Result<bool, LobbyError> {
        self.back_to_open(game_id, reason).await
    }

    #[tracing::instrument(skip(self))]
    async fn user_deleted(&self, account_id: Uuid) -> Result<usize, LobbyError> {
        let mut changed = 0;
        let mut last_err = None;
        for game in self.cache.games_of(account_id) {
            if game.status != GameStatus::Open {
                // Started games keep the race: the engine still simulates it.
                continue;
            }
            let game_id = game.id;
            let result: Result<Option<Arc<Game>>, LobbyError> = async {
                Ok(mutate!(self, game_id, async |c| {
                    let Some(row) = db::lock_game(c, game_id).await? else {
                        return Ok(None);
                    };
                    if row.status != GameStatus::Open.as_str()
                        || !db::mark_left(c, game_id, account_id).await?
                    {
                        return Ok(None);
                    }
                    let row = if row.owner_id == account_id {
                        db::transition(c, game_id, "open", "cancelled", Stamp::FinishedAt)
                            .await?
                            .unwrap_or(row)
                    } else {
                        row
                    };
                    finish(c, row).await.map(Some)
                }))
            }
            .await;
            match result {
                Ok(Some(g)) => {
                    changed += 1;
                    tracing::info!(game_id = %game_id, status = %g.status, "deleted account left the game");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(game_id = %game_id, error = %e, "could not remove a deleted account from a game");
                    last_err = Some(e);
                }
            }
        }
        match last_err {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }
}
