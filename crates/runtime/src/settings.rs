//! The runtime's settings (`BACKEND_RUNTIME_*`, `BACKEND_DOCKER_*`).

use std::time::Duration;

use galaxy_core::env::{ConfigError, Env, Reader, Variable};

use crate::model::ResourceLimits;

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[
    Variable::new(
        "BACKEND_DOCKER_HOST",
        "unix:///var/run/docker.sock",
        "Docker daemon",
    ),
    Variable::new(
        "BACKEND_DOCKER_NETWORK",
        "galaxy-engines",
        "user-defined bridge for engine containers; created at boot if missing",
    ),
    Variable::new(
        "BACKEND_RUNTIME_RECONCILE_INTERVAL",
        "60s",
        "reconciler period",
    ),
    Variable::new(
        "BACKEND_RUNTIME_TURN_TICK_INTERVAL",
        "1s",
        "turn scheduler period",
    ),
    Variable::new(
        "BACKEND_RUNTIME_IMAGE_PULL_POLICY",
        "if_missing",
        "`if_missing`, `always`, `never`",
    ),
    Variable::new(
        "BACKEND_RUNTIME_START_TIMEOUT",
        "60s",
        "time for a new engine to answer its health check",
    ),
];

/// `BACKEND_RUNTIME_IMAGE_PULL_POLICY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    IfMissing,
    Always,
    Never,
}

impl PullPolicy {
    /// The spellings the variable accepts, each with its policy.
    pub const OPTIONS: &[(&str, Self)] = &[
        ("if_missing", Self::IfMissing),
        ("always", Self::Always),
        ("never", Self::Never),
    ];
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

impl RuntimeSettings {
    /// The settings from [`VARIABLES`], with the default resource limits.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        Ok(Self {
            docker_host: r.string("BACKEND_DOCKER_HOST"),
            network: r.string("BACKEND_DOCKER_NETWORK"),
            reconcile_interval: r.duration("BACKEND_RUNTIME_RECONCILE_INTERVAL")?,
            turn_tick_interval: r.duration("BACKEND_RUNTIME_TURN_TICK_INTERVAL")?,
            pull_policy: r.pick("BACKEND_RUNTIME_IMAGE_PULL_POLICY", PullPolicy::OPTIONS)?,
            start_timeout: r.duration("BACKEND_RUNTIME_START_TIMEOUT")?,
            limits: ResourceLimits::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use galaxy_core::env::assert_each_names_its_variable;

    #[test]
    fn defaults_match_the_contract() {
        let s = RuntimeSettings::from_env(&Env::default()).unwrap();
        assert_eq!(s.docker_host, "unix:///var/run/docker.sock");
        assert_eq!(s.network, "galaxy-engines");
        assert_eq!(s.pull_policy, PullPolicy::IfMissing);
        assert_eq!(s.reconcile_interval, Duration::from_secs(60));
        assert_eq!(s.turn_tick_interval, Duration::from_secs(1));
        assert_eq!(s.start_timeout, Duration::from_secs(60));
    }

    #[test]
    fn pull_policies_and_bad_values() {
        for (raw, policy) in [
            ("always", PullPolicy::Always),
            ("NEVER", PullPolicy::Never),
            ("if_missing", PullPolicy::IfMissing),
        ] {
            let env = Env::from_pairs([("BACKEND_RUNTIME_IMAGE_PULL_POLICY", raw)]);
            assert_eq!(RuntimeSettings::from_env(&env).unwrap().pull_policy, policy);
        }
        assert_each_names_its_variable(
            RuntimeSettings::from_env,
            &[],
            &[
                ("BACKEND_RUNTIME_IMAGE_PULL_POLICY", "sometimes"),
                ("BACKEND_RUNTIME_TURN_TICK_INTERVAL", "0s"),
                ("BACKEND_RUNTIME_START_TIMEOUT", "soon"),
            ],
        );
    }
}
