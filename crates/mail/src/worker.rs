//! The delivery worker: every interval, claim a batch (see `store` for the
//! lease design), send it over `connections` parallel SMTP sessions
//! (`session`), record each try (`recorder`).
//!
//! The database work overlaps the sending, so the sessions never wait on
//! PostgreSQL in a backlog: while a full batch is sent, the next one is
//! claimed on another pooled connection (one batch ahead, no more), and the
//! sessions hand their outcomes to one writer task that writes, in one
//! statement, whatever queued up during its previous write. The writer
//! lives across the full batches of a backlog; the first batch that is not
//! full, an error or the shutdown flushes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use galaxy_db::{Pool, PooledConn};
use galaxy_queue::{Backoff, BatchOutcome};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::outcomes::{DeliveryOutcomes, NoOutcomes};
use crate::recorder::Recorder;
use crate::session::{self, Batch, Report};
use crate::settings::Settings;
use crate::smtp::{Mailer, SmtpSetupError};
use crate::store::{self, Claimed};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(String),
}

/// Counters the telemetry module exports; cheap to clone and read.
#[derive(Debug, Default)]
pub struct WorkerStats {
    batches: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    last_batch_micros: AtomicU64,
}

impl WorkerStats {
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    /// Tries that ended `sent`.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Tries that ended `failed` (transient or permanent).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    /// Failures that were permanent (dead-lettered at once).
    pub fn permanent_failures(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }
    /// Duration of the last batch that claimed rows.
    pub fn last_batch_duration(&self) -> Duration {
        Duration::from_micros(self.last_batch_micros.load(Ordering::Relaxed))
    }

    pub(crate) fn count_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_failed(&self, permanent: bool) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if permanent {
            self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count_batch(&self, elapsed: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.last_batch_micros.store(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// A claimed batch and the moment its claim was sent: its lease runs from
/// a little later, so deadlines counted from here are on the safe side.
struct Claim {
    rows: Vec<Claimed>,
    at: Instant,
}

pub struct Worker {
    pool: Pool,
    settings: Settings,
    report: Arc<Report>,
    /// Configured once; each batch session is a fresh copy of it.
    mailer: Mailer,
    /// Sessions a full batch left open for the next one, which follows at
    /// once (a backlog): they skip a connect, greeting and QUIT per batch.
    /// Closed by the first batch that ends without being full.
    parked: Mutex<Vec<Mailer>>,
    /// Told every recorded state of a route's mail, in the recording transaction.
    outcomes: Arc<dyn DeliveryOutcomes>,
    /// The next batch, claimed while the current one is sent. Its rows are
    /// leased like any claim: sent by the next batch, released at shutdown,
    /// or (if the process dies) due again when the lease ends.
    ahead: Mutex<Option<JoinHandle<Result<Claim, WorkerError>>>>,
    /// The outcome writer a full batch left running for the next one.
    recorder: Mutex<Option<Recorder>>,
}

impl Worker {
    /// Checks the SMTP settings (From address, TLS client) up front.
    pub fn new(pool: Pool, settings: Settings) -> Result<Self, SmtpSetupError> {
        let mailer = Mailer::new(&settings.smtp)?;
        let backoff = Backoff::new(settings.worker.retry_base, settings.worker.retry_max);
        Ok(Self {
            pool,
            settings,
            report: Arc::new(Report {
                stats: Arc::new(WorkerStats::default()),
                backoff,
            }),
            mailer,
            parked: Mutex::new(Vec::new()),
            outcomes: Arc::new(NoOutcomes),
            ahead: Mutex::new(None),
            recorder: Mutex::new(None),
        })
    }

    /// Reports the recorded states of deliveries that belong to a
    /// notification route to `outcomes` (see [`DeliveryOutcomes`]).
    #[must_use]
    pub fn with_outcomes(mut self, outcomes: Arc<dyn DeliveryOutcomes>) -> Self {
        self.outcomes = outcomes;
        self
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        Arc::clone(&self.report.stats)
    }

    /// Runs until `shutdown`; a batch in progress stops before its next
    /// send and hands its untried rows back, as does the batch claimed
    /// ahead; the outcomes not yet written are written before it returns.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let interval = self.settings.worker.interval;
            let token = shutdown.clone();
            galaxy_queue::run_periodic("mail", interval, shutdown, || self.run_batch(&token)).await;
            self.wind_down().await;
        })
    }

    /// Claims (or takes the batch claimed ahead) and delivers one batch.
    ///
    /// After a full batch the last outcomes may still be being written when
    /// this returns (they are written while the next batch sends); the next
    /// call that finds a batch not full, or no batch, returns once every
    /// outcome is written, and reports a failed write as its error. A
    /// worker dropped after a full batch leaves the batch claimed ahead to
    /// its lease.
    pub async fn run_batch(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<BatchOutcome, WorkerError> {
        let started = Instant::now();
        let w = &self.settings.worker;
        let ahead = lock(&self.ahead).take();
        let claim = match ahead {
            Some(task) => joined(task).await,
            None => claim(&self.pool, w.batch_size, w.lease).await,
        };
        let claim = match claim {
            Ok(c) => c,
            Err(e) => {
                self.flush_logged().await;
                return Err(e);
            }
        };
        if claim.rows.is_empty() {
            self.close_parked().await;
            self.flush().await?;
            return Ok(BatchOutcome::default());
        }
        let count = claim.rows.len();
        let full = count >= w.batch_size;
        // One batch ahead, and only while a batch is sent well inside its
        // lease: the batch claimed ahead waits for this one, and no send
        // starts later than half its own lease (rows left then are released).
        if full && !shutdown.is_cancelled() && self.stats().last_batch_duration() < w.lease / 4 {
            self.claim_ahead();
        }
        let recorder = lock(&self.recorder).take().unwrap_or_else(|| {
            Recorder::start(
                self.pool.clone(),
                // A batch, or `record_every` per session where that is
                // more: enough for the sessions to run on through a write.
                (
                    w.batch_size.max(w.record_every * w.connections),
                    w.record_every,
                ),
                w.max_attempts,
                Arc::clone(&self.outcomes),
            )
        });
        let result = self.deliver(&recorder, claim, full, shutdown).await;
        self.report.stats.count_batch(started.elapsed());
        // The batch-duration metric is recorded once, by the loop that runs
        // this batch (`galaxy_queue::run_periodic`).
        let whole = matches!(result, Ok(n) if n == count);
        let flushed = if full && whole && !shutdown.is_cancelled() && !recorder.stopped() {
            self.keep_recorder(recorder).await;
            Ok(())
        } else {
            let flushed = recorder.finish().await;
            if shutdown.is_cancelled() {
                self.release_ahead_logged().await;
            }
            flushed
        };
        let processed = result?;
        flushed?;
        Ok(BatchOutcome {
            processed,
            full: full && whole,
        })
    }

    /// Sends the batch over `connections` sessions at once (see `session`);
    /// returns how many rows were tried and reported. Rows no session took
    /// (shutdown, deadline) are handed back at once.
    async fn deliver(
        &self,
        recorder: &Recorder,
        claim: Claim,
        full: bool,
        shutdown: &CancellationToken,
    ) -> Result<usize, WorkerError> {
        let w = &self.settings.worker;
        let sessions = w.connections.clamp(1, claim.rows.len().max(1));
        let batch = Arc::new(Batch::new(claim.rows, sessions, claim.at + w.lease / 2));
        let stop = shutdown.child_token();
        let mut mailers = std::mem::take(&mut *lock(&self.parked));
        while mailers.len() > sessions {
            if let Some(mut extra) = mailers.pop() {
                extra.close().await;
            }
        }
        mailers.resize_with(sessions, || self.mailer.fresh());
        let handles: Vec<_> = mailers
            .into_iter()
            .map(|mailer| {
                tokio::spawn(session::run(
                    mailer,
                    Arc::clone(&batch),
                    Arc::clone(&self.report),
                    recorder.sender(),
                    stop.clone(),
                ))
            })
            .collect();
        let mut processed = 0;
        let mut open = Vec::with_capacity(handles.len());
        for h in handles {
            match h.await {
                Ok((mailer, reported)) => {
                    processed += reported;
                    open.push(mailer);
                }
                Err(e) => tracing::error!(error = %e, "SMTP session task failed"),
            }
        }
        // `stop` is cancelled by a shutdown or by a session that found the
        // writer gone (a database error).
        let untried = batch.untried();
        let keep =
            full && untried.is_empty() && !stop.is_cancelled() && Instant::now() < batch.deadline;
        for mut mailer in open {
            if keep && mailer.is_connected() {
                lock(&self.parked).push(mailer);
            } else {
                mailer.close().await;
            }
        }
        // After a database error the rows are left to their lease.
        if !untried.is_empty() && !recorder.stopped() {
            let mut conn = self.conn().await?;
            store::release(&mut conn, untried).await?;
            tracing::info!(
                released = untried.len(),
                "batch stopped early; untried rows released"
            );
        }
        Ok(processed)
    }

    fn claim_ahead(&self) {
        let mut slot = lock(&self.ahead);
        if slot.is_none() {
            let pool = self.pool.clone();
            let (limit, lease) = (self.settings.worker.batch_size, self.settings.worker.lease);
            *slot = Some(tokio::spawn(
                async move { claim(&pool, limit, lease).await },
            ));
        }
    }

    /// Leaves the writer running for the next batch (one writer per worker:
    /// another call's writer already kept is flushed instead).
    async fn keep_recorder(&self, recorder: Recorder) {
        let other = lock(&self.recorder).replace(recorder);
        if let Some(other) = other
            && let Err(e) = other.finish().await
        {
            tracing::warn!(error = %e, "writing mail outcomes failed");
        }
    }

    /// Waits until every outcome reported so far is written.
    async fn flush(&self) -> Result<(), WorkerError> {
        let recorder = lock(&self.recorder).take();
        match recorder {
            Some(r) => r.finish().await,
            None => Ok(()),
        }
    }

    async fn flush_logged(&self) {
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "writing mail outcomes failed");
        }
    }

    /// Hands the batch claimed ahead back (its rows due at once).
    async fn release_ahead(&self) -> Result<(), WorkerError> {
        let ahead = lock(&self.ahead).take();
        let Some(task) = ahead else { return Ok(()) };
        let claim = joined(task).await?;
        if !claim.rows.is_empty() {
            let mut conn = self.conn().await?;
            store::release(&mut conn, &claim.rows).await?;
            tracing::info!(
                released = claim.rows.len(),
                "worker stopped; the batch claimed ahead was released"
            );
        }
        Ok(())
    }

    async fn release_ahead_logged(&self) {
        // Left to its lease if this fails: due again when it ends.
        if let Err(e) = self.release_ahead().await {
            tracing::warn!(error = %e, "releasing the batch claimed ahead failed");
        }
    }

    /// What the worker leaves behind when it stops: every outcome written,
    /// the batch claimed ahead released, the sessions closed.
    async fn wind_down(&self) {
        self.flush_logged().await;
        self.release_ahead_logged().await;
        self.close_parked().await;
    }

    async fn conn(&self) -> Result<PooledConn, WorkerError> {
        self.pool
            .get()
            .await
            .map_err(|e| WorkerError::Pool(e.to_string()))
    }

    async fn close_parked(&self) {
        let parked = std::mem::take(&mut *lock(&self.parked));
        for mut mailer in parked {
            mailer.close().await;
        }
    }
}

/// Scrubs what is due (see `retention`), then claims up to `limit` rows on
/// a connection of its own.
async fn claim(pool: &Pool, limit: usize, lease: Duration) -> Result<Claim, WorkerError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| WorkerError::Pool(e.to_string()))?;
    crate::retention::scrub(&mut conn).await?;
    let at = Instant::now();
    let rows = store::claim(&mut conn, limit, lease).await?;
    Ok(Claim { rows, at })
}

async fn joined(task: JoinHandle<Result<Claim, WorkerError>>) -> Result<Claim, WorkerError> {
    task.await
        .map_err(|e| WorkerError::Pool(format!("claim task failed: {e}")))?
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
