//! The runtime module: one engine container per running game on Docker
//! (bollard), the engine versions, the runtime records and their operation
//! log, the reconciler and the turn scheduler, and the admin runtime routes.
//!
//! The face is [`RuntimeService`] (implemented by [`Runtime`]); reactions
//! (engine running or failed, turn generated) leave through
//! [`RuntimeEvents`], which the binary implements — this crate depends on no
//! other domain module.

mod db;
mod docker;
mod engine;
mod error;
mod http;
mod model;
pub mod schema;
mod service;

pub use docker::{LABEL_BACKEND, LABEL_GAME, LABEL_VERSION, container_name, volume_name};
pub use error::RuntimeError;
pub use http::{OperationAccepted, configure, openapi};
pub use model::{
    Actor, DesiredState, EngineFailure, EngineFailureKind, EngineVersion, EngineVersionStatus,
    GameTurn, ObservedState, Operation, OperationKind, Outcome, ResourceLimits, RuntimeRecord,
    StartPlayer, StartRequest,
};
pub use service::{
    PullPolicy, ReconcileReport, Runtime, RuntimeEvents, RuntimeService, RuntimeSettings,
};
