//! The runtime's settings (`BACKEND_RUNTIME_*`, `BACKEND_DOCKER_*`).

use std::time::Duration;

use crate::model::ResourceLimits;

/// `BACKEND_RUNTIME_IMAGE_PULL_POLICY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    IfMissing,
    Always,
    Never,
}

impl PullPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "if_missing" => Some(Self::IfMissing),
            "always" => Some(Self::Always),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `BACKEND_DOCKER_HOST`.
    pub docker_host: String,
    /// `BACKEND_DOCKER_NETWORK`.
    pub network: String,
    pub pull_policy: PullPolicy,
    pub start_timeout: Duration,
    pub reconcile_interval: Duration,
    pub turn_tick_interval: Duration,
    pub limits: ResourceLimits,
}
