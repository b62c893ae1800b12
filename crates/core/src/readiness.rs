//! What `/readyz` waits for. Modules register a flag (cache warm, listener
//! bound) and set it once; live dependencies (PostgreSQL) register a check
//! that runs on every probe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde::Serialize;

/// A condition that is re-checked on every probe.
pub trait ReadinessCheck: Send + Sync + 'static {
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// A one-way readiness condition owned by the module that registered it.
#[derive(Clone)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Default, Clone)]
pub struct Readiness {
    inner: Arc<Mutex<Inner>>,
}

/// Tells whether this process leads (SYSTEM.md §12); not a condition.
pub type LeaderProbe = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Default)]
struct Inner {
    flags: Vec<(String, ReadyFlag)>,
    checks: Vec<(String, Arc<dyn ReadinessCheck>)>,
    leader: Option<LeaderProbe>,
}

/// The `/readyz` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    pub ready: bool,
    /// Every condition by name: `ok` or what is wrong.
    pub checks: std::collections::BTreeMap<String, String>,
    /// Whether this backend runs the leader-only workers (the reconciler
    /// and the turn scheduler); a follower is as ready as the leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<bool>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a condition that starts not ready.
    pub fn flag(&self, name: &str) -> ReadyFlag {
        let flag = ReadyFlag(Arc::new(AtomicBool::new(false)));
        self.lock().flags.push((name.to_owned(), flag.clone()));
        flag
    }

    pub fn add_check(&self, name: &str, check: Arc<dyn ReadinessCheck>) {
        self.lock().checks.push((name.to_owned(), check));
    }

    /// Reports leadership in every `/readyz` body.
    pub fn report_leader(&self, probe: LeaderProbe) {
        self.lock().leader = Some(probe);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub async fn report(&self) -> ReadinessReport {
        let (flags, checks, leader) = {
            let inner = self.lock();
            (
                inner.flags.clone(),
                inner.checks.clone(),
                inner.leader.clone(),
            )
        };
        let mut report = ReadinessReport {
            ready: true,
            checks: Default::default(),
            leader: leader.map(|probe| probe()),
        };
        for (name, check) in checks {
            let state = match check.check().await {
                Ok(()) => "ok".to_owned(),
                Err(e) => {
                    report.ready = false;
                    e
                }
            };
            report.checks.insert(name, state);
        }
        for (name, flag) in flags {
            let ready = flag.is_ready();
            report.ready &= ready;
            report
                .checks
                .insert(name, if ready { "ok" } else { "not ready" }.to_owned());
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;
    impl ReadinessCheck for Failing {
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Err("unreachable".to_owned()) })
        }
    }

    #[tokio::test]
    async fn ready_only_when_every_condition_holds() {
        let r = Readiness::new();
        let cache = r.flag("cache");
        assert!(!r.report().await.ready);
        cache.set_ready();
        assert!(r.report().await.ready);
        r.add_check("postgres", Arc::new(Failing));
        let report = r.report().await;
        assert!(!report.ready);
        assert_eq!(report.checks["postgres"], "unreachable");
        assert_eq!(report.checks["cache"], "ok");
        assert_eq!(report.leader, None);
    }

    #[tokio::test]
    async fn leadership_is_reported_but_not_a_condition() {
        let r = Readiness::new();
        r.report_leader(Arc::new(|| false));
        let report = r.report().await;
        assert!(report.ready);
        assert_eq!(report.leader, Some(false));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["leader"], false);
    }
}
