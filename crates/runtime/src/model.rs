//! The runtime's public data: engine versions, runtime records, operations,
//! turns, and the inputs of a start.

use chrono::{DateTime, Utc};
use diesel::{Queryable, Selectable};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::schema::{engine_versions, runtime_operation_log, runtime_records};

/// A closed set of words stored as `text` with a CHECK constraint.
///
/// A word this build does not know reads as the `unknown` variant instead of
/// failing the whole query: several backends share one database, and a newer
/// one may store a word an older one lacks.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? } unknown = $unknown:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        /// Read from a `text` column (`#[diesel(deserialize_as = String)]`).
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::parse(&s).unwrap_or(Self::$unknown)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Whether an engine version may be used.
    EngineVersionStatus { Active = "active", Deprecated = "deprecated", Disabled = "disabled" }
    unknown = Disabled
);
text_enum!(
    /// What the operator (or the lobby) wants.
    DesiredState { Running = "running", Stopped = "stopped" } unknown = Stopped
);
text_enum!(
    /// What Docker last showed.
    ObservedState {
        Absent = "absent",
        Starting = "starting",
        Running = "running",
        Exited = "exited",
        Failed = "failed",
    }
    unknown = Failed
);
text_enum!(
    OperationKind { Start = "start", Stop = "stop", Patch = "patch", ForceNextTurn = "force_next_turn" }
    unknown = Start
);
text_enum!(
    Outcome { Running = "running", Succeeded = "succeeded", Failed = "failed" } unknown = Failed
);

/// `{version, image, status, created_at}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = engine_versions, check_for_backend(diesel::pg::Pg))]
pub struct EngineVersion {
    pub version: String,
    pub image: String,
    #[diesel(deserialize_as = String)]
    pub status: EngineVersionStatus,
    pub created_at: DateTime<Utc>,
}

/// One game's engine container as the runtime tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = runtime_records, check_for_backend(diesel::pg::Pg))]
pub struct RuntimeRecord {
    pub game_id: Uuid,
    #[diesel(deserialize_as = String)]
    pub desired_state: DesiredState,
    #[diesel(deserialize_as = String)]
    pub observed_state: ObservedState,
    pub container_id: Option<String>,
    pub container_name: String,
    pub engine_version: String,
    pub image: String,
    /// `http://<container ip>:8080` on the engine network.
    pub endpoint: Option<String>,
    pub current_turn: i32,
    pub next_turn_at: Option<DateTime<Utc>>,
    /// The one-shot force-next-turn flag.
    pub skip_next_wait: bool,
    pub last_error: Option<String>,
    pub last_reconciled_at: Option<DateTime<Utc>>,
    /// Strictly increases with every write of the record (taken under its
    /// row lock), so it orders the writes as they committed.
    pub updated_at: DateTime<Utc>,
}

impl RuntimeRecord {
    /// Whether `self` may replace `cached` in a cache: a write that
    /// committed earlier but reports later never undoes a newer one.
    pub fn supersedes(&self, cached: Option<&RuntimeRecord>) -> bool {
        cached.is_none_or(|c| self.updated_at >= c.updated_at)
    }
}

/// One row of the operation log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = runtime_operation_log, check_for_backend(diesel::pg::Pg))]
pub struct Operation {
    pub id: Uuid,
    pub game_id: Uuid,
    #[diesel(deserialize_as = String)]
    pub operation: OperationKind,
    /// An admin id, an account id or `system` (the reconciler).
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[diesel(deserialize_as = String)]
    pub outcome: Outcome,
    pub error_message: Option<String>,
}

/// One generated turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GameTurn {
    pub game_id: Uuid,
    pub turn_no: i32,
    pub generated_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub forced: bool,
}

/// Who asked for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Admin(Uuid),
    Account(Uuid),
    /// The reconciler or the scheduler.
    System,
}

impl Actor {
    pub fn as_log_value(self) -> String {
        match self {
            Actor::Admin(id) | Actor::Account(id) => id.to_string(),
            Actor::System => "system".to_owned(),
        }
    }
}

/// A player as the engine's start config names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StartPlayer {
    pub account_id: Uuid,
    pub race_name: String,
}

/// Everything needed to start (and later re-create) a game's engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    pub game_id: Uuid,
    pub engine_version: String,
    pub players: Vec<StartPlayer>,
    pub settings: Value,
    /// Seconds between scheduled turns.
    pub turn_interval_seconds: u32,
}

impl StartRequest {
    /// The engine's `GALAXY_START_CONFIG`.
    pub fn start_config(&self) -> Value {
        serde_json::json!({
            "game_id": self.game_id,
            "players": self.players,
            "settings": self.settings,
        })
    }
}

/// Why an engine could not be brought up; maps 1:1 to the admin kinds
/// `runtime.image_pull_failed`, `runtime.container_start_failed`,
/// `runtime.start_config_invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineFailureKind {
    ImagePullFailed,
    ContainerStartFailed,
    StartConfigInvalid,
}

impl EngineFailureKind {
    /// The notification kind an adapter submits for it.
    pub fn notification_kind(self) -> &'static str {
        match self {
            Self::ImagePullFailed => "runtime.image_pull_failed",
            Self::ContainerStartFailed => "runtime.container_start_failed",
            Self::StartConfigInvalid => "runtime.start_config_invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFailure {
    pub kind: EngineFailureKind,
    pub reason: String,
}

impl std::fmt::Display for EngineFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.notification_kind(), self.reason)
    }
}

/// The engine's resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    pub memory_bytes: i64,
    /// CPUs in units of 10^-9.
    pub nano_cpus: i64,
    pub pids: i64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * 1024 * 1024,
            nano_cpus: 500_000_000,
            pids: 256,
        }
    }
}
