//! The container-driver seam: what the lifecycle, the reconciler and the
//! scheduler need from whatever runs engines. Docker ([`crate::DockerDriver`])
//! implements it today; a Kubernetes driver (one Pod and one
//! PersistentVolumeClaim per game, docs/scale-out.md) would implement the
//! same trait and touch nothing else: the runtime holds an
//! `Arc<dyn ContainerDriver>`.
//!
//! The contract every driver keeps:
//! - one engine per game, named [`container_name`], carrying the labels
//!   [`LABEL_BACKEND`]`=1`, [`LABEL_GAME`] and [`LABEL_VERSION`], with its
//!   data on one persistent volume named [`volume_name`] mounted at `/data`;
//! - the driver never restarts an engine by itself (the reconciler does);
//! - removing an engine keeps its volume;
//! - [`ContainerDriver::list_labelled`] lists only this deployment's engines
//!   (Docker: the engine network; Kubernetes: the namespace), so two
//!   deployments sharing a daemon or cluster never touch each other's.
//!
//! Errors are the driver's own words (they end up in the operation log and
//! the record's `last_error`).

use async_trait::async_trait;
use uuid::Uuid;

pub const LABEL_BACKEND: &str = "galaxy.backend";
pub const LABEL_GAME: &str = "galaxy.game_id";
pub const LABEL_VERSION: &str = "galaxy.engine_version";

/// A game's engine name (Docker container, Kubernetes Pod): a valid DNS
/// label, so both accept it.
pub fn container_name(game_id: Uuid) -> String {
    format!("galaxy-game-{game_id}")
}

/// A game's data volume (Docker volume, Kubernetes PersistentVolumeClaim).
pub fn volume_name(game_id: Uuid) -> String {
    format!("galaxy-game-{game_id}-data")
}

/// What to create for a game.
#[derive(Debug, Clone)]
pub struct EngineSpec<'a> {
    pub game_id: Uuid,
    pub engine_version: &'a str,
    pub image: &'a str,
    /// The engine's `GALAXY_START_CONFIG` (SYSTEM.md §7).
    pub start_config: String,
}

/// An engine as inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineState {
    pub running: bool,
    /// Set once the engine exited (an engine rejecting its config exits 78).
    pub exit_code: Option<i64>,
    /// The engine's HTTP base URL (`http://host:port`), once it has one.
    pub endpoint: Option<String>,
}

/// An engine carrying `galaxy.backend=1`, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledEngine {
    /// The driver's id of the engine (Docker container id, Pod uid).
    pub id: String,
    pub name: String,
    pub game_id: Option<Uuid>,
    pub running: bool,
    /// The engine's HTTP base URL, when running and reachable.
    pub endpoint: Option<String>,
}

/// Where engines run. Every method is safe to call again after a failure or
/// a crash (the reconciler and the next start redo the steps), and `engine`
/// arguments accept the id or the name.
#[async_trait]
pub trait ContainerDriver: Send + Sync + 'static {
    /// Connects (Docker: negotiates the API version) and ensures what every
    /// engine shares (Docker: the engine network). Cheap once it succeeded;
    /// until then every reconcile pass calls it again.
    async fn prepare(&self) -> Result<(), String>;

    async fn image_present(&self, image: &str) -> Result<bool, String>;
    async fn pull(&self, image: &str) -> Result<(), String>;

    /// Creates the game's volume unless it exists.
    async fn ensure_volume(&self, game_id: Uuid) -> Result<(), String>;
    /// Creates and starts the engine (no restart policy); returns its id.
    async fn create_and_start(&self, spec: &EngineSpec<'_>) -> Result<String, String>;
    /// `None` when there is no such engine.
    async fn inspect(&self, engine: &str) -> Result<Option<EngineState>, String>;
    /// The last lines the engine wrote to stderr (its reason for exiting),
    /// at most 500 characters; empty when unknown.
    async fn stderr_tail(&self, engine: &str) -> String;
    /// Stops (bounded) and removes the engine; the volume stays. An engine
    /// already gone is not an error.
    async fn stop_and_remove(&self, engine: &str) -> Result<(), String>;
    /// Removes the engine at once; the volume stays. An engine already gone
    /// is not an error.
    async fn remove(&self, engine: &str) -> Result<(), String>;
    /// Every engine of this deployment carrying `galaxy.backend=1`, running
    /// or not, in one call.
    async fn list_labelled(&self) -> Result<Vec<LabelledEngine>, String>;
}
