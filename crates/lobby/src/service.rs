//! The lobby service: its public trait, the reactions it offers other
//! modules, and the PostgreSQL implementation with its write-through cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use galaxy_core::{Page, Paged, ReadyFlag, Validator};
use galaxy_db::{DbError, Pool, PooledConn};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::cache::LobbyCache;
use crate::db::{self, GameRow, MemberRow, NewGameRow, Stamp};
use crate::error::LobbyError;
use crate::model::{CreateGame, Game, GameStatus, GameView, JoinGame, MemberRole, TurnInfo};
use crate::ports::{AccountDirectory, GameRuntime, GameStartSpec, LobbyNotifier, StartPlayer};

/// Bounds of the create-game fields (also stated in the OpenAPI schema).
pub const NAME_MAX: usize = 64;
pub const RACE_NAME_MAX: usize = 32;
pub const PLAYERS_MAX: i64 = 16;
pub const TURN_INTERVAL_MIN: i64 = 10;
pub const TURN_INTERVAL_MAX: i64 = 7 * 24 * 3600;
pub const SETTINGS_MAX_BYTES: usize = 16 * 1024;

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
    /// The engine could not be started: `starting` → `open` (decision
    /// LOBBY-1), so the owner can start again or cancel.
    async fn engine_failed(&self, game_id: Uuid, reason: &str) -> Result<bool, LobbyError>;
    /// The account was deleted: it leaves every `open` game; `open` games it
    /// owns are cancelled (decision LOBBY-2). Returns how many games changed.
    async fn user_deleted(&self, account_id: Uuid) -> Result<usize, LobbyError>;
}

/// Runs a transaction body under the game's lock and, only once it has
/// committed, writes the resulting game (if any) to the cache before the lock
/// is released; errors return early from the calling function. Evaluates to
/// `Option<Arc<Game>>`.
macro_rules! mutate {
    ($self:ident, $game_id:expr, async |$c:ident| $body:block) => {{
        let mut txn = $self.begin($game_id).await?;
        let conn: &mut AsyncPgConnection = &mut txn.conn;
        let changed: Option<Game> = conn
            .transaction(
                async |$c: &mut AsyncPgConnection| -> Result<Option<Game>, LobbyError> { $body },
            )
            .await?;
        let cached = changed.map(|g| $self.cache.put(g));
        drop(txn);
        cached
    }};
}

struct Txn {
    _guard: OwnedMutexGuard<()>,
    conn: PooledConn,
}

/// The PostgreSQL-backed lobby.
pub struct PgLobby {
    pool: Pool,
    cache: LobbyCache,
    runtime: Arc<dyn GameRuntime>,
    notifier: Arc<dyn LobbyNotifier>,
    accounts: Arc<dyn AccountDirectory>,
    /// One lock per game held from transaction start until the cache is
    /// updated, so cache writes of one game land in commit order. The row
    /// lock (`FOR UPDATE`) still guards the database across processes.
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    ready: ReadyFlag,
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
        let (games, members) = db::load_all(&mut conn).await?;
        let mut by_game: HashMap<Uuid, Vec<MemberRow>> = HashMap::new();
        for m in members {
            by_game.entry(m.game_id).or_default().push(m);
        }
        let games = games
            .into_iter()
            .map(|g| {
                let members = by_game.remove(&g.id).unwrap_or_default();
                g.into_game(members)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = games.len();
        self.cache.replace_all(games);
        self.ready.set_ready();
        tracing::info!(games = n, "lobby cache warm");
        Ok(n)
    }

    /// Number of cached games (a metric).
    pub fn cached_games(&self) -> usize {
        self.cache.len()
    }

    async fn conn(&self) -> Result<PooledConn, LobbyError> {
        Ok(self.pool.get().await.map_err(DbError::from)?)
    }

    async fn lock(&self, game_id: Uuid) -> OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(game_id).or_default())
        };
        m.lock_owned().await
    }

    fn view(&self, game: &Game) -> GameView {
        let turn = if game.status.has_engine() {
            self.runtime.current_turn(game.id)
        } else {
            None
        };
        game.view(turn)
    }

    fn cached(&self, game_id: Uuid) -> Result<Arc<Game>, LobbyError> {
        self.cache.get(game_id).ok_or(LobbyError::NotFound)
    }

    fn require_active(&self, account_id: Uuid) -> Result<(), LobbyError> {
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
    fn member_race(
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
    async fn begin(&self, game_id: Uuid) -> Result<Txn, LobbyError> {
        let guard = self.lock(game_id).await;
        let conn = self.conn().await?;
        Ok(Txn {
            _guard: guard,
            conn,
        })
    }

    /// `starting` → `open` (failed or refused start).
    async fn back_to_open(&self, game_id: Uuid, reason: &str) -> Result<bool, LobbyError> {
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
async fn finish(c: &mut AsyncPgConnection, row: GameRow) -> Result<Game, LobbyError> {
    let members = db::current_members(c, row.id).await?;
    Ok(row.into_game(members)?)
}

fn conflict_game_not_open(status: &str) -> LobbyError {
    LobbyError::conflict("game_not_open", format!("the game is {status}, not open"))
}

/// Case-insensitive race-name equality, as the unique index compares them.
fn same_race(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// Maps the race-name unique index to its conflict code; the in-transaction
/// check catches nearly all cases, this catches Unicode case rules on which
/// Rust and PostgreSQL disagree.
fn race_taken(e: DieselError) -> LobbyError {
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

/// Characters that render as nothing or reorder text: allowed by
/// `char::is_control` but not "printable" for a name other players read.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}')
}

/// One message per bad field: the first rule a display text breaks.
fn check_display_text(v: &mut Validator, field: &str, value: &str, max: usize) {
    let len = value.chars().count();
    let problem = if !(1..=max).contains(&len) {
        Some(format!("must be 1 to {max} characters"))
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else if value.trim().is_empty() {
        Some("must not be blank".to_owned())
    } else if value.trim() != value {
        Some("must not start or end with whitespace".to_owned())
    } else if value.chars().any(invisible) {
        Some("must not contain invisible formatting characters".to_owned())
    } else if field == "race_name" && value.contains(['/', '\\']) {
        // The race is a segment of the engine's URL path (`/v1/players/{race}/…`).
        Some("must not contain / or \\".to_owned())
    } else {
        None
    };
    if let Some(message) = problem {
        v.check(false, field, message);
    }
}

fn validate_create(req: &CreateGame) -> Result<serde_json::Value, LobbyError> {
    let mut v = Validator::new();
    check_display_text(&mut v, "name", &req.name, NAME_MAX);
    check_display_text(&mut v, "race_name", &req.race_name, RACE_NAME_MAX);
    v.check(
        (1..=PLAYERS_MAX).contains(&req.min_players),
        "min_players",
        format!("must be between 1 and {PLAYERS_MAX}"),
    );
    v.check(
        (1..=PLAYERS_MAX).contains(&req.max_players),
        "max_players",
        format!("must be between 1 and {PLAYERS_MAX}"),
    );
    // Only meaningful when both are in range (one message per bad field).
    let in_range = |n: i64| (1..=PLAYERS_MAX).contains(&n);
    v.check(
        !(in_range(req.min_players) && in_range(req.max_players))
            || req.min_players <= req.max_players,
        "max_players",
        "must not be less than min_players",
    );
    v.check(
        (TURN_INTERVAL_MIN..=TURN_INTERVAL_MAX).contains(&req.turn_interval_seconds),
        "turn_interval_seconds",
        format!("must be between {TURN_INTERVAL_MIN} and {TURN_INTERVAL_MAX}"),
    );
    if let Some(version) = &req.engine_version {
        v.text("engine_version", version, 1, 64);
    }
    let settings = match &req.settings {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(s) => s.clone(),
    };
    v.check(settings.is_object(), "settings", "must be a JSON object");
    v.check(
        serde_json::to_vec(&settings).is_ok_and(|b| b.len() <= SETTINGS_MAX_BYTES),
        "settings",
        format!("must be at most {SETTINGS_MAX_BYTES} bytes of JSON"),
    );
    v.finish().map_err(LobbyError::Invalid)?;
    Ok(settings)
}

fn validate_race(race_name: &str) -> Result<(), LobbyError> {
    let mut v = Validator::new();
    check_display_text(&mut v, "race_name", race_name, RACE_NAME_MAX);
    v.finish().map_err(LobbyError::Invalid)
}

fn to_i32(v: i64) -> i32 {
    // Only called after validation bounded the value.
    i32::try_from(v).unwrap_or(i32::MAX)
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
        let game = mutate!(self, game_id, async |c| {
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
            Ok(Some(row.into_game(members)?))
        })
        .ok_or(LobbyError::NotFound)?;
        tracing::info!("member joined");
        self.notifier.member_joined(&game, account_id, race).await;
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
            let row = db::lock_game(c, game_id)
                .await?
                .ok_or(LobbyError::NotFound)?;
            if row.owner_id != account_id {
                return Err(LobbyError::forbidden(
                    "not_owner",
                    "only the game's owner can start it",
                ));
            }
            if row.status != GameStatus::Open.as_str() {
                return Err(conflict_game_not_open(&row.status));
            }
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
            let row = db::lock_game(c, game_id)
                .await?
                .ok_or(LobbyError::NotFound)?;
            if row.owner_id != account_id {
                return Err(LobbyError::forbidden(
                    "not_owner",
                    "only the game's owner can cancel it",
                ));
            }
            if row.status != GameStatus::Open.as_str() {
                return Err(conflict_game_not_open(&row.status));
            }
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

#[async_trait]
impl LobbyEvents for PgLobby {
    #[tracing::instrument(skip(self))]
    async fn engine_running(&self, game_id: Uuid) -> Result<bool, LobbyError> {
        let changed = mutate!(self, game_id, async |c| {
            let Some(row) =
                db::transition(c, game_id, "starting", "running", Stamp::StartedAt).await?
            else {
                return Ok(None);
            };
            finish(c, row).await.map(Some)
        });
        let Some(game) = changed else {
            tracing::info!("engine running reported for a game not starting; ignored");
            return Ok(false);
        };
        tracing::info!("game running");
        self.notifier.game_started(&game).await;
        Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CreateGame {
        CreateGame {
            name: "Andromeda".into(),
            race_name: "Zorgons".into(),
            min_players: 2,
            max_players: 4,
            turn_interval_seconds: 60,
            engine_version: None,
            settings: None,
        }
    }

    fn fields(r: CreateGame) -> Vec<String> {
        match validate_create(&r) {
            Err(LobbyError::Invalid(e)) => {
                e.field_errors().iter().map(|f| f.field.clone()).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn create_validation_names_every_bad_field() {
        assert_eq!(validate_create(&req()).unwrap(), serde_json::json!({}));
        let mut r = req();
        r.name = String::new();
        r.race_name = "x".repeat(33);
        r.min_players = 5;
        r.turn_interval_seconds = 9;
        r.settings = Some(serde_json::json!([1]));
        let f = fields(r);
        for want in [
            "name",
            "race_name",
            "max_players",
            "turn_interval_seconds",
            "settings",
        ] {
            assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
        }
        let mut r = req();
        r.max_players = 17;
        r.min_players = 0;
        assert_eq!(fields(r), ["min_players", "max_players"]);
        let mut r = req();
        r.settings = Some(serde_json::json!({ "x": "y".repeat(SETTINGS_MAX_BYTES) }));
        assert_eq!(fields(r), ["settings"]);
    }

    #[test]
    fn race_names_are_printable_and_trimmed() {
        assert!(validate_race("Zorg Empire").is_ok());
        assert!(validate_race(&"é".repeat(32)).is_ok());
        for bad in [
            "",
            " ",
            " Zorg",
            "Zorg ",
            "Zo\u{7}rg",
            "Zo\u{200B}rg",
            "Zo/rg",
            &"a".repeat(33),
        ] {
            assert!(validate_race(bad).is_err(), "{bad:?} accepted");
        }
        assert!(same_race("Zorg", "zORG"));
    }
}
