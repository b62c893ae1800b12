//! The runtime module: one engine container per running game, behind the
//! [`ContainerDriver`] seam (Docker over bollard today), the engine versions, the runtime records and their operation
//! log, the reconciler and the turn scheduler, and the admin runtime routes.
//!
//! The face is [`RuntimeService`] (implemented by [`Runtime`]); reactions
//! (engine running or failed, turn generated) leave through
//! [`RuntimeEvents`], which the binary implements — this crate depends on no
//! other domain module.

mod coherence;
mod db;
mod docker;
mod driver;
mod engine;
mod error;
mod events;
mod http;
mod lifecycle;
mod model;
mod reconciler;
mod scheduler;
pub mod schema;
mod service;
mod settings;
mod state;
mod workers;

pub use db::{container_counts, recorded_games};
pub use docker::DockerDriver;
pub use driver::{
    ContainerDriver, EngineSpec, EngineState, LABEL_BACKEND, LABEL_GAME, LABEL_VERSION,
    LabelledEngine, container_name, volume_name,
};
pub use error::RuntimeError;
pub use events::{AfterCommit, RuntimeEvents};
pub use http::{OperationAccepted, configure, openapi};
pub use model::{
    Actor, DesiredState, EngineFailure, EngineFailureKind, EngineVersion, EngineVersionStatus,
    GameTurn, ObservedState, Operation, OperationKind, Outcome, ResourceLimits, RuntimeRecord,
    StartPlayer, StartRequest,
};
pub use reconciler::ReconcileReport;
pub use scheduler::TURN_CLAIM_LEASE;
pub use service::RuntimeService;
pub use settings::{PullPolicy, RuntimeSettings, VARIABLES};
pub use state::Runtime;
