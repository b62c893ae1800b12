//! The reconciler and the turn scheduler as periodic workers, run only
//! while this backend leads (SYSTEM.md §12): a follower skips its passes,
//! and a pass in progress stops the moment leadership is lost.

use std::future::Future;

use galaxy_db::leader::Leadership;
use galaxy_queue::BatchOutcome;

use crate::error::RuntimeError;
use crate::state::Runtime;

/// One pass of a leader-only worker: nothing when following, cut short
/// when leadership goes (as a crash would be; every step is safe to redo).
async fn as_leader<F>(leadership: &Leadership, pass: F) -> Result<BatchOutcome, RuntimeError>
where
    F: Future<Output = Result<usize, RuntimeError>>,
{
    let idle = BatchOutcome {
        processed: 0,
        full: false,
    };
    if !leadership.is_leader() {
        return Ok(idle);
    }
    tokio::select! {
        done = pass => done.map(|processed| BatchOutcome { processed, full: false }),
        () = leadership.lost() => {
            tracing::warn!("leadership lost during a pass; stopped");
            Ok(idle)
        }
    }
}

impl Runtime {
    /// The reconciler and the turn scheduler as periodic workers.
    pub fn spawn_workers(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
        leadership: &Leadership,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let reconciler = {
            let this = self.clone();
            let leadership = leadership.clone();
            tokio::spawn(galaxy_queue::run_periodic(
                "runtime_reconciler",
                self.inner.settings.reconcile_interval,
                shutdown.clone(),
                move || {
                    let this = this.clone();
                    let leadership = leadership.clone();
                    async move {
                        as_leader(&leadership, async {
                            let r = this.reconcile_once().await?;
                            Ok(r.restarted + r.stopped + r.orphans_removed + r.refreshed)
                        })
                        .await
                    }
                },
            ))
        };
        let scheduler = {
            let this = self.clone();
            let leadership = leadership.clone();
            tokio::spawn(galaxy_queue::run_periodic(
                "runtime_turn_scheduler",
                self.inner.settings.turn_tick_interval,
                shutdown.clone(),
                move || {
                    let this = this.clone();
                    let leadership = leadership.clone();
                    async move { as_leader(&leadership, this.tick_once()).await }
                },
            ))
        };
        vec![reconciler, scheduler]
    }
}
