//! The lobby's state: the pool, the cache of games with their current
//! members, the per-game locks and the ports to other modules; the
//! transaction shape every write goes through ([`mutate!`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use galaxy_core::ReadyFlag;
use galaxy_db::{DbError, Pool, PooledConn};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::cache::LobbyCache;
use crate::db::{self, GameRow, MemberRow, Stamp};
use crate::error::LobbyError;
use crate::model::{Game, GameView};
use crate::ports::{AccountDirectory, GameRuntime, LobbyNotifier};

/// The channel on which every change of a game (its row or its members) is
/// announced to the other backends, in the change's transaction.
pub(crate) const CHANNEL: &str = "galaxy_lobby_games";

pub(crate) async fn announce(
    conn: &mut AsyncPgConnection,
    changed: Option<&Game>,
) -> Result<(), LobbyError> {
    let id = changed.map(|g| g.id);
    galaxy_db::announce::announce(conn, CHANNEL, id).await?;
    Ok(())
}

/// Runs a transaction body under the game's lock, announces the changed
/// game and, only once it has committed, writes the resulting game (if any) to the cache before the lock
/// is released; errors return early from the calling function. Evaluates to
/// `Option<Arc<Game>>`.
macro_rules! mutate {
    ($self:ident, $game_id:expr, async |$c:ident| $body:block) => {{
        let mut txn = $self.begin($game_id).await?;
        let conn: &mut AsyncPgConnection = &mut txn.conn;
        let changed: Option<Game> = conn
            .transaction(
                async |$c: &mut AsyncPgConnection| -> Result<Option<Game>, LobbyError> {
                    let mut body = async || -> Result<Option<Game>, LobbyError> { $body };
                    let changed = body().await?;
                    $crate::state::announce($c, changed.as_ref()).await?;
                    Ok(changed)
                },
            )
            .await?;
        let cached = changed.map(|g| $self.cache.put(g));
        drop(txn);
        cached
    }};
}
pub(crate) use mutate;

/// [`mutate!`] for a body that also returns something made in the same
/// transaction (a notification's [`AfterCommit`]): evaluates to
/// `Option<(Arc<Game>, T)>`.
macro_rules! mutate_with {
    ($self:ident, $game_id:expr, $t:ty, async |$c:ident| $body:block) => {{
        let mut txn = $self.begin($game_id).await?;
        let conn: &mut AsyncPgConnection = &mut txn.conn;
        let changed: Option<(Game, $t)> = conn
            .transaction(
                async |$c: &mut AsyncPgConnection| -> Result<Option<(Game, $t)>, LobbyError> {
                    let mut body = async || -> Result<Option<(Game, $t)>, LobbyError> { $body };
                    let changed = body().await?;
                    $crate::state::announce($c, changed.as_ref().map(|(g, _)| g)).await?;
                    Ok(changed)
                },
            )
            .await?;
        let cached = changed.map(|(g, extra)| ($self.cache.put(g), extra));
        drop(txn);
        cached
    }};
}

pub(crate) use mutate_with;

pub(crate) struct Txn {
    _guard: OwnedMutexGuard<()>,
    pub(crate) conn: PooledConn,
}

/// The PostgreSQL-backed lobby.
pub struct PgLobby {
    pub(crate) pool: Pool,
    pub(crate) cache: LobbyCache,
    pub(crate) runtime: Arc<dyn GameRuntime>,
    pub(crate) notifier: Arc<dyn LobbyNotifier>,
    pub(crate) accounts: Arc<dyn AccountDirectory>,
    /// One lock per game held from transaction start until the cache is
    /// updated, so cache writes of one game land in commit order. The row
    /// lock (`FOR UPDATE`) still guards the database across processes.
    pub(crate) locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) ready: ReadyFlag,
}

impl PgLobby {
    /// Builds the service with an empty cache; call [`PgLobby::warm`] before
    /// serving. `ready` is set once the cache is loaded.
    pub fn new(
        pool: Pool,
        runtime: Arc<dyn GameRuntime>,
        notifier: Arc<dyn LobbyNotifier>,
        accounts: Arc<dyn AccountDirectory>,
        ready: ReadyFlag,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            cache: LobbyCache::default(),
            runtime,
            notifier,
            accounts,
            locks: Mutex::default(),
            ready,
        })
    }

    /// Loads every game and current membership into the cache; returns the
    /// number of games.
    #[tracing::instrument(skip(self))]
    pub async fn warm(&self) -> Result<usize, LobbyError> {
        let mut conn = self.conn().await?;
        let (games, members) = db::load(&mut conn, None).await?;
        let games = with_members(games, members)?;
        let n = games.len();
        self.cache.replace_all(games);
        self.ready.set_ready();
        tracing::info!(games = n, "lobby cache warm");
        Ok(n)
    }

    /// Reads these games again into the cache (a peer changed them). Games
    /// are never deleted, so every one read replaces the cached one.
    pub(crate) async fn reload(&self, ids: &[Uuid]) -> Result<(), LobbyError> {
        // Read under the games' locks (taken in id order; a write holds one
        // from its transaction's start until its cache write), so what is
        // read is at least as new as this backend's own writes.
        let mut held = Vec::with_capacity(ids.len());
        for id in ids {
            held.push(self.lock(*id).await);
        }
        let mut conn = self.conn().await?;
        let (games, members) = db::load(&mut conn, Some(ids)).await?;
        for game in with_members(games, members)? {
            self.cache.put(game);
        }
        drop(held);
        Ok(())
    }

    /// Number of cached games (a metric).
    pub fn cached_games(&self) -> usize {
        self.cache.len()
    }

    pub(crate) async fn conn(&self) -> Result<PooledConn, LobbyError> {
        Ok(self.pool.get().await.map_err(DbError::from)?)
    }

    pub(crate) async fn lock(&self, game_id: Uuid) -> OwnedMutexGuard<()> {
        let m = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(locks.entry(game_id).or_default())
        };
        m.lock_owned().await
    }

    pub(crate) fn view(&self, game: &Game) -> GameView {
        let turn = if game.status.has_engine() {
            self.runtime.current_turn(game.id)
        } else {
            None
        };
        game.view(turn)
    }

    pub(crate) fn cached(&self, game_id: Uuid) -> Result<Arc<Game>, LobbyError> {
        self.cache.get(game_id).ok_or(LobbyError::NotFound)
    }

    pub(crate) fn require_active(&self, account_id: Uuid) -> Result<(), LobbyError> {
        if self.accounts.is_active(account_id) {
            Ok(())
        } else {
            Err(LobbyError::forbidden(
                "account_inactive",
                "the account is blocked or deleted",
            ))
        }
    }

    /// A game's member, for the game routes: 404 unknown game, 403 not a member.
    pub(crate) fn member_race(
        &self,
        game_id: Uuid,
        account_id: Uuid,
    ) -> Result<(Arc<Game>, String), LobbyError> {
        let game = self.cached(game_id)?;
        let race = game
            .member(account_id)
            .map(|m| m.race_name.clone())
            .ok_or_else(|| {
                LobbyError::forbidden("not_member", "only the game's members may do this")
            })?;
        Ok((game, race))
    }

    /// Holds the game's lock and a connection for one transaction; the
    /// caller writes the cache before dropping it (see [`mutate!`]).
    pub(crate) async fn begin(&self, game_id: Uuid) -> Result<Txn, LobbyError> {
        let guard = self.lock(game_id).await;
        let conn = self.conn().await?;
        Ok(Txn {
            _guard: guard,
            conn,
        })
    }

    /// `starting` → `open` (failed or refused start).
    pub(crate) async fn back_to_open(
        &self,
        game_id: Uuid,
        reason: &str,
    ) -> Result<bool, LobbyError> {
        let changed = mutate!(self, game_id, async |c| {
            let Some(row) = db::transition(c, game_id, "starting", "open", Stamp::None).await?
            else {
                return Ok(None);
            };
            finish(c, row).await.map(Some)
        });
        if changed.is_some() {
            tracing::warn!(game_id = %game_id, reason = %reason, "game start failed; game is open again");
        } else {
            tracing::info!(game_id = %game_id, reason = %reason, "start failure reported for a game not starting; ignored");
        }
        Ok(changed.is_some())
    }
}

/// Builds the cache entry of a locked game from the database.
pub(crate) async fn finish(c: &mut AsyncPgConnection, row: GameRow) -> Result<Game, LobbyError> {
    let members = db::current_members(c, row.id).await?;
    Ok(row.into_game(members)?)
}

pub(crate) fn conflict_game_not_open(status: &str) -> LobbyError {
    LobbyError::conflict("game_not_open", format!("the game is {status}, not open"))
}

/// Case-insensitive race-name equality, as the unique index compares them.
pub(crate) fn same_race(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// Maps the race-name unique index to its conflict code; the in-transaction
/// check catches nearly all cases, this catches Unicode case rules on which
/// Rust and PostgreSQL disagree.
pub(crate) fn race_taken(e: DieselError) -> LobbyError {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if info.constraint_name() == Some("game_members_race_key") =>
        {
            LobbyError::conflict(
                "race_name_taken",
                "another member already uses this race name",
            )
        }
        _ => e.into(),
    }
}

/// Games with their current members, as the cache holds them.
fn with_members(games: Vec<GameRow>, members: Vec<MemberRow>) -> Result<Vec<Game>, LobbyError> {
    let mut by_game: HashMap<Uuid, Vec<MemberRow>> = HashMap::new();
    for m in members {
        by_game.entry(m.game_id).or_default().push(m);
    }
    games
        .into_iter()
        .map(|g| {
            let members = by_game.remove(&g.id).unwrap_or_default();
            g.into_game(members).map_err(LobbyError::from)
        })
        .collect()
}

/// The lobby follows its peers' changes (SYSTEM.md §12).
#[async_trait::async_trait]
impl galaxy_db::announce::Coherent for PgLobby {
    fn channel(&self) -> &'static str {
        CHANNEL
    }

    async fn reload(&self, ids: &[Uuid]) -> Result<(), String> {
        PgLobby::reload(self, ids).await.map_err(|e| e.to_string())
    }

    async fn reload_all(&self) -> Result<(), String> {
        self.warm().await.map(drop).map_err(|e| e.to_string())
    }
}
