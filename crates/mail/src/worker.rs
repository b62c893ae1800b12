//! The delivery worker: every interval, claim a batch (see `store` for the
//! lease design), send it over `connections` parallel SMTP sessions, record
//! each try.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::QueryResult;
use galaxy_db::{Pool, PooledConn};
use galaxy_queue::{Backoff, BatchOutcome};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::outcomes::{DeliveryOutcomes, NoOutcomes};
use crate::settings::Settings;
use crate::smtp::{Mailer, Outgoing, SendFailure, SmtpSetupError};
use crate::store::{self, Claimed, Outcome, OutcomeFailure};

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
}

pub struct Worker {
    pool: Pool,
    settings: Settings,
    backoff: Backoff,
    stats: Arc<WorkerStats>,
    /// Configured once; each batch session is a fresh copy of it.
    mailer: Mailer,
    /// Sessions a full batch left open for the next one, which follows at
    /// once (a backlog): they skip a connect, greeting and QUIT per batch.
    /// Closed by the first batch that ends without being full.
    parked: std::sync::Mutex<Vec<Mailer>>,
    /// Told every recorded state of a route's mail, in the recording transaction.
    outcomes: Arc<dyn DeliveryOutcomes>,
}

impl Worker {
    /// Checks the SMTP settings (From address, TLS client) up front.
    pub fn new(pool: Pool, settings: Settings) -> Result<Self, SmtpSetupError> {
        let mailer = Mailer::new(&settings.smtp)?;
        let backoff = Backoff::new(settings.worker.retry_base, settings.worker.retry_max);
        Ok(Self {
            pool,
            settings,
            backoff,
            stats: Arc::new(WorkerStats::default()),
            mailer,
            parked: std::sync::Mutex::new(Vec::new()),
            outcomes: Arc::new(NoOutcomes),
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
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown`; a batch in progress stops before its next
    /// send and hands its untried rows back.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let interval = self.settings.worker.interval;
            let token = shutdown.clone();
            galaxy_queue::run_periodic("mail", interval, shutdown, || self.run_batch(&token)).await;
            self.close_parked().await;
        })
    }

    /// Claims and delivers one batch.
    pub async fn run_batch(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<BatchOutcome, WorkerError> {
        let started = Instant::now();
        let w = &self.settings.worker;
        let mut conn: PooledConn = self
            .pool
            .get()
            .await
            .map_err(|e| WorkerError::Pool(e.to_string()))?;
        crate::retention::scrub(&mut conn).await?;
        let claimed = store::claim(&mut conn, w.batch_size, w.lease).await?;
        if claimed.is_empty() {
            self.close_parked().await;
            return Ok(BatchOutcome::default());
        }
        let full = claimed.len() >= w.batch_size;
        let count = claimed.len();
        // Checked before every send: stop well inside the lease so a slow
        // relay can never let another worker claim a row still being sent.
        let deadline = started + w.lease / 2;
        let result = self.deliver(conn, claimed, full, shutdown, deadline).await;
        let elapsed = started.elapsed();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.last_batch_micros.store(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        // The batch-duration metric is recorded once, by the loop that runs
        // this batch (`galaxy_queue::run_periodic`).
        let processed = result?;
        Ok(BatchOutcome {
            processed,
            full: full && processed == count,
        })
    }

    /// Sends the batch over `connections` sessions at once. Each session
    /// takes the next untried row (one shared cursor, so no row of a claim
    /// is sent twice) and hands its result to this task, which turns it
    /// into an outcome and records outcomes in windows of `record_every`
    /// through the batch's one database connection.
    async fn deliver(
        &self,
        conn: PooledConn,
        claimed: Vec<Claimed>,
        full: bool,
        shutdown: &CancellationToken,
        deadline: Instant,
    ) -> Result<usize, WorkerError> {
        let w = &self.settings.worker;
        let every = w.record_every.max(1);
        let rows = Arc::new(claimed);
        let sessions = w.connections.clamp(1, rows.len().max(1));
        let shared = Arc::new(Shared {
            next: AtomicUsize::new(0),
            connected: AtomicUsize::new(sessions),
        });
        // Bounded: a session waits while a window is being written, so the
        // sent-but-unrecorded mails stay within two windows plus one per
        // session.
        let (tx, mut rx) = mpsc::channel::<Sent>(sessions);
        let stop = shutdown.child_token();
        let mut mailers = std::mem::take(&mut *self.parked_sessions());
        while mailers.len() > sessions {
            if let Some(mut extra) = mailers.pop() {
                extra.close().await;
            }
        }
        mailers.resize_with(sessions, || self.mailer.fresh());
        let handles: Vec<JoinHandle<Mailer>> = mailers
            .into_iter()
            .map(|mailer| {
                tokio::spawn(session(
                    mailer,
                    Arc::clone(&rows),
                    Arc::clone(&shared),
                    tx.clone(),
                    stop.clone(),
                    deadline,
                ))
            })
            .collect();
        drop(tx);
        let mut recorder = Recorder {
            conn: Some(conn),
            inflight: None,
            max_attempts: w.max_attempts,
            outcomes: Arc::clone(&self.outcomes),
        };
        let result = async {
            let mut pending: Vec<Outcome> = Vec::with_capacity(every);
            let mut done = 0;
            while let Some((i, failure)) = rx.recv().await {
                pending.push(self.outcome(&rows[i], failure));
                done += 1;
                if pending.len() >= every {
                    recorder
                        .submit(std::mem::replace(&mut pending, Vec::with_capacity(every)))
                        .await?;
                }
            }
            recorder.submit(pending).await?;
            // Every session has ended: rows past the cursor were never tried.
            let tried = shared.next.load(Ordering::SeqCst).min(rows.len());
            let rest: Vec<&Claimed> = rows[tried..].iter().collect();
            if !rest.is_empty() {
                store::release(recorder.idle().await?, &rest).await?;
                tracing::info!(
                    released = rest.len(),
                    "batch stopped early; untried rows released"
                );
            }
            recorder.idle().await?;
            Ok(done)
        }
        .await;
        // On a database error the sessions stop before their next send.
        let keep = full && result.is_ok() && !stop.is_cancelled() && Instant::now() < deadline;
        stop.cancel();
        drop(rx);
        let mut open = Vec::with_capacity(handles.len());
        for h in handles {
            match h.await {
                Ok(mailer) if keep && mailer.is_connected() => open.push(mailer),
                Ok(mut mailer) => mailer.close().await,
                Err(e) => tracing::error!(error = %e, "SMTP session task failed"),
            }
        }
        self.parked_sessions().extend(open);
        result
    }

    fn parked_sessions(&self) -> std::sync::MutexGuard<'_, Vec<Mailer>> {
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn close_parked(&self) {
        let parked = std::mem::take(&mut *self.parked_sessions());
        for mut mailer in parked {
            mailer.close().await;
        }
    }

    fn outcome(&self, row: &Claimed, failure: Option<SendFailure>) -> Outcome {
        let email_hash = galaxy_telemetry::email_hash(&row.to_address);
        let failure = match failure {
            None => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    delivery_id = %row.id,
                    kind = %row.kind,
                    email_hash = %email_hash,
                    attempt_no = row.attempt_no,
                    origin_request_id = row.origin_request_id.as_deref(),
                    "mail sent"
                );
                None
            }
            Some(f) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let permanent = matches!(f, SendFailure::Permanent { .. });
                if permanent {
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                let failures = u32::try_from(row.cycle_attempts.max(1)).unwrap_or(1);
                // The reply text is not logged: relays often echo the
                // recipient address in it.
                tracing::warn!(
                    delivery_id = %row.id,
                    kind = %row.kind,
                    email_hash = %email_hash,
                    attempt_no = row.attempt_no,
                    cycle_attempts = row.cycle_attempts,
                    smtp_code = f.code(),
                    permanent,
                    origin_request_id = row.origin_request_id.as_deref(),
                    "mail delivery failed"
                );
                Some(OutcomeFailure {
                    smtp_code: f.code().map(i32::from),
                    error: truncate(f.error(), 1000),
                    permanent,
                    retry_in: self.backoff.delay(failures),
                })
            }
        };
        Outcome {
            id: row.id,
            attempt_no: row.attempt_no,
            routed: row.notification_route_id.is_some(),
            finished_at: chrono::Utc::now(),
            failure,
        }
    }
}

/// The batch's cursor and how many of its sessions can still reach the relay.
struct Shared {
    next: AtomicUsize,
    connected: AtomicUsize,
}

/// A row index and how its try ended (`None`: sent).
type Sent = (usize, Option<SendFailure>);

/// One SMTP session of a batch: takes the next untried row until none is
/// left, the batch is stopped (shutdown, lease deadline, database error) or
/// the relay cannot be reached; hands its session back. Stop conditions are checked before a row is
/// taken, so every taken row is tried and reported exactly once.
async fn session(
    mut mailer: Mailer,
    rows: Arc<Vec<Claimed>>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Sent>,
    stop: CancellationToken,
    deadline: Instant,
) -> Mailer {
    let stopped = || stop.is_cancelled() || Instant::now() >= deadline;
    while !stopped() {
        let i = shared.next.fetch_add(1, Ordering::SeqCst);
        let Some(row) = rows.get(i) else { break };
        let failure = match mailer.ensure_connected().await {
            Ok(()) => mailer
                .send(&Outgoing {
                    id: row.id,
                    to: &row.to_address,
                    subject: &row.subject,
                    body_text: &row.body_text,
                    body_html: row.body_html.as_deref(),
                })
                .await
                .err(),
            Err(f) => {
                let _ = tx.send((i, Some(f.clone()))).await;
                // The last session that cannot connect fails the rows no
                // session is left to try, with the same error, instead of
                // each waiting for a connect timeout; they retry after
                // their backoff.
                if shared.connected.fetch_sub(1, Ordering::SeqCst) == 1 {
                    while !stopped() {
                        let j = shared.next.fetch_add(1, Ordering::SeqCst);
                        if j >= rows.len() || tx.send((j, Some(f.clone()))).await.is_err() {
                            break;
                        }
                    }
                }
                return mailer;
            }
        };
        if tx.send((i, failure)).await.is_err() {
            break;
        }
    }
    // The caller closes the session, or keeps it for the next batch.
    mailer
}

/// Writes outcomes while the batch goes on sending, so a database round
/// trip overlaps the next SMTP ones. It owns the batch's connection; at most
/// one write is in flight, so outcomes land in order and a crash leaves at
/// most two windows (`2 × record_every`) plus two mails per session of
/// sent-but-unrecorded mails.
struct Recorder {
    conn: Option<PooledConn>,
    inflight: Option<JoinHandle<(PooledConn, QueryResult<usize>)>>,
    max_attempts: u32,
    outcomes: Arc<dyn DeliveryOutcomes>,
}

impl Recorder {
    /// Waits for the write in flight; returns the connection.
    async fn idle(&mut self) -> Result<&mut PooledConn, WorkerError> {
        if let Some(task) = self.inflight.take() {
            let (conn, res) = task
                .await
                .map_err(|e| WorkerError::Pool(format!("outcome writer failed: {e}")))?;
            self.conn = Some(conn);
            res?;
        }
        self.conn
            .as_mut()
            .ok_or_else(|| WorkerError::Pool("outcome writer lost its connection".into()))
    }

    async fn submit(&mut self, outcomes: Vec<Outcome>) -> Result<(), WorkerError> {
        self.idle().await?;
        if outcomes.is_empty() {
            return Ok(());
        }
        let Some(mut conn) = self.conn.take() else {
            return Err(WorkerError::Pool(
                "outcome writer lost its connection".into(),
            ));
        };
        let max = self.max_attempts;
        let port = Arc::clone(&self.outcomes);
        self.inflight = Some(tokio::spawn(async move {
            let res = store::record(&mut conn, &outcomes, max, port.as_ref()).await;
            (conn, res)
        }));
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
