//! The lobby's domain types and the JSON shapes of its routes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Lifecycle of a game. `open` → `starting` (owner starts) → `running`
/// (engine healthy); `starting` → `open` again when the engine fails to start
/// (see docs/decisions.md LOBBY-1); `open` → `cancelled` (owner cancels, or
/// the owner's account is deleted). `paused` and `finished` are set by
/// operators/runtime, never by a lobby route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GameStatus {
    Open,
    Starting,
    Running,
    Paused,
    Finished,
    Cancelled,
}

impl GameStatus {
    pub const ALL: [GameStatus; 6] = [
        Self::Open,
        Self::Starting,
        Self::Running,
        Self::Paused,
        Self::Finished,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether an engine has (or had) a turn counter worth showing.
    pub fn has_engine(self) -> bool {
        matches!(self, Self::Running | Self::Paused | Self::Finished)
    }
}

impl fmt::Display for GameStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status word (from a query string or a corrupt row).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownWord(pub String);

impl FromStr for GameStatus {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownWord(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Owner,
    Player,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Player => "player",
        }
    }
}

impl FromStr for MemberRole {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "player" => Ok(Self::Player),
            other => Err(UnknownWord(other.to_owned())),
        }
    }
}

/// A current member of a game (members who left are not listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub account_id: Uuid,
    pub race_name: String,
    pub role: MemberRole,
    pub joined_at: DateTime<Utc>,
}

/// A game as the lobby cache holds it: the row plus its current members,
/// ordered by join time.
#[derive(Debug, Clone, PartialEq)]
pub struct Game {
    pub id: Uuid,
    pub name: String,
    pub owner_id: Uuid,
    pub engine_version: String,
    pub status: GameStatus,
    pub min_players: u32,
    pub max_players: u32,
    pub turn_interval_seconds: u32,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub members: Vec<Member>,
}

impl Game {
    pub fn member(&self, account_id: Uuid) -> Option<&Member> {
        self.members.iter().find(|m| m.account_id == account_id)
    }

    pub fn view(&self, current_turn: Option<u32>) -> GameView {
        GameView {
            id: self.id,
            name: self.name.clone(),
            owner_id: self.owner_id,
            engine_version: self.engine_version.clone(),
            status: self.status,
            min_players: self.min_players,
            max_players: self.max_players,
            turn_interval_seconds: self.turn_interval_seconds,
            settings: self.settings.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            current_turn,
            members: self.members.clone(),
        }
    }
}

/// The game JSON of every lobby and admin route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GameView {
    pub id: Uuid,
    pub name: String,
    pub owner_id: Uuid,
    pub engine_version: String,
    pub status: GameStatus,
    pub min_players: u32,
    pub max_players: u32,
    pub turn_interval_seconds: u32,
    /// Free-form engine settings (a JSON object).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// When the engine first answered healthy (`running`); null before.
    pub started_at: Option<DateTime<Utc>>,
    /// The engine's current turn while `running`, `paused` or `finished`;
    /// null before the game has an engine.
    pub current_turn: Option<u32>,
    /// Current members, in join order.
    pub members: Vec<Member>,
}

/// `POST /api/v1/lobby/games`. Numbers are read as wide integers so that a
/// negative or oversized value is reported as a field error, not a parse error.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateGame {
    /// 1–64 characters.
    pub name: String,
    /// The creator's race: 1–32 printable characters.
    pub race_name: String,
    /// 1 ≤ min_players ≤ max_players ≤ 16.
    #[schema(minimum = 1, maximum = 16)]
    pub min_players: i64,
    #[schema(minimum = 1, maximum = 16)]
    pub max_players: i64,
    /// 10 seconds to 7 days.
    #[schema(minimum = 10, maximum = 604800)]
    pub turn_interval_seconds: i64,
    /// Defaults to the newest `active` engine version.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// A JSON object of at most 16 KiB, handed to the engine; default `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// `POST /api/v1/lobby/games/{id}/join`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct JoinGame {
    /// 1–32 printable characters, unique (case-insensitively) among the
    /// game's current members.
    pub race_name: String,
}

/// The race's orders for the coming turn; they replace any it submitted
/// before for that turn. The engine validates
/// them as a whole (nothing is stored if one is invalid).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SubmitOrders {
    /// At most 16 orders (the reference engine's `MAX_ORDERS`). Passed to the
    /// engine as sent; the schema is the reference engine's (SYSTEM.md §7).
    #[schema(value_type = Vec<Order>, max_items = 16)]
    pub orders: Vec<serde_json::Value>,
}

/// One order of the reference engine, tagged by `type`. Anything else — an
/// unknown type, a count out of range, more than 16 orders — is 400
/// `rejected_by_engine` with the engine's reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("build_ships" = "#/components/schemas/BuildShips"),
    ("raise_industry" = "#/components/schemas/RaiseIndustry"),
)))]
pub enum Order {
    BuildShips(BuildShips),
    RaiseIndustry(RaiseIndustry),
}

/// `{"type": "build_ships", "count": N}`: at the turn, `ships += N`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuildShips {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: BuildShipsType,
    /// Ships to build: 1 ≤ N ≤ the race's industry at the time of the
    /// order (the report's `industry`; the upper bound is dynamic, so the
    /// engine checks it).
    #[schema(minimum = 1)]
    pub count: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuildShipsType {
    BuildShips,
}

/// `{"type": "raise_industry"}`: at the turn, `industry += 1`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RaiseIndustry {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: RaiseIndustryType,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RaiseIndustryType {
    RaiseIndustry,
}

/// The engine's report for one race after one turn (the reference engine's
/// `GET /v1/players/{race}/report`, forwarded as it is).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// The turn this report is for (0 is the start).
    pub turn: u32,
    /// The caller's race.
    pub race: String,
    /// Industry after the turn (10 at turn 0); bounds `build_ships.count`.
    pub industry: u32,
    /// Ships after the turn (0 at turn 0).
    pub ships: u32,
}

/// One generated turn (from the runtime's `game_turns`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TurnInfo {
    pub turn_no: u32,
    pub generated_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Generated early by an admin's force-next-turn.
    pub forced: bool,
}
