//! Recording what became of push routes right after submit (pushed to a
//! gateway, or left for the worker).
//!
//! Every submit has one such write after its transaction commits. Rather
//! than one UPDATE per submit, concurrent submits hand their outcomes to one
//! recorder task that writes everything waiting in a single statement (group
//! commit): under load N submits cost one statement, and each submit still
//! returns only once its own outcome is written.

use std::sync::OnceLock;

use galaxy_db::Pool;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store;

/// Outcomes written in one statement at most (bounds the statement's size).
const MAX_ROUTES_PER_WRITE: usize = 2_000;

struct Outcomes {
    ids: Vec<Uuid>,
    pushed: Vec<bool>,
    written: oneshot::Sender<Result<(), String>>,
}

pub(crate) struct OutcomeRecorder {
    pool: Pool,
    /// The runtime the service was built on, if any. The recorder task runs
    /// there rather than on the first submitter's: that may be an HTTP
    /// worker's runtime, which stops before the process does.
    runtime: Option<Handle>,
    /// Started on first use.
    queue: OnceLock<mpsc::UnboundedSender<Outcomes>>,
}

impl OutcomeRecorder {
    pub(crate) fn new(pool: Pool) -> Self {
        Self {
            pool,
            runtime: Handle::try_current().ok(),
            queue: OnceLock::new(),
        }
    }

    /// Writes `pushed[i]` for route `ids[i]` (routes no longer `pending` are
    /// left alone) and waits until it is written.
    pub(crate) async fn record(&self, ids: Vec<Uuid>, pushed: Vec<bool>) -> Result<(), String> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = write_batches(self.pool.clone(), rx);
            match &self.runtime {
                Some(runtime) => drop(runtime.spawn(task)),
                None => drop(tokio::spawn(task)),
            }
            tx
        });
        let (written, wait) = oneshot::channel();
        queue
            .send(Outcomes {
                ids,
                pushed,
                written,
            })
            .map_err(|_| "the outcome recorder stopped".to_owned())?;
        wait.await
            .map_err(|_| "the outcome recorder stopped".to_owned())?
    }
}

/// Takes whatever is queued (at least one submit's outcomes), writes it in
/// one statement and answers every waiting submit. Ends when the service is
/// dropped.
async fn write_batches(pool: Pool, mut queue: mpsc::UnboundedReceiver<Outcomes>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let mut routes = batch[0].ids.len();
        while routes < MAX_ROUTES_PER_WRITE {
            match queue.try_recv() {
                Ok(more) => {
                    routes += more.ids.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let ids: Vec<Uuid> = batch.iter().flat_map(|o| o.ids.iter().copied()).collect();
        let pushed: Vec<bool> = batch
            .iter()
            .flat_map(|o| o.pushed.iter().copied())
            .collect();
        let result = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            store::record_push_outcomes(&mut conn, &ids, &pushed)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        tracing::trace!(
            submits = batch.len(),
            routes,
            ok = result.is_ok(),
            "push outcomes written"
        );
        for outcomes in batch {
            // A submit that stopped waiting (cancelled) needs no answer.
            let _ = outcomes
                .written
                .send(result.as_ref().map(drop).map_err(Clone::clone));
        }
    }
}
