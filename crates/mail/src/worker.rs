//! The delivery worker: every interval, claim a batch (see `store` for the
//! lease design), send it over one SMTP session, record each try.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::QueryResult;
use galaxy_db::{Pool, PooledConn};
use galaxy_queue::{Backoff, BatchOutcome};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
    /// Configured once; each batch takes a fresh copy with its own session.
    mailer: Mailer,
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
        })
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
        let claimed = store::claim(&mut conn, w.batch_size, w.lease).await?;
        if claimed.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let full = claimed.len() >= w.batch_size;
        // Checked before every send: stop well inside the lease so a slow
        // relay can never let another worker claim a row still being sent.
        let deadline = started + w.lease / 2;
        let result = self.deliver(conn, &claimed, shutdown, deadline).await;
        let elapsed = started.elapsed();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.last_batch_micros.store(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        galaxy_telemetry::record_worker_batch(
            "mail",
            if result.is_ok() { "ok" } else { "error" },
            elapsed,
        );
        let processed = result?;
        Ok(BatchOutcome {
            processed,
            full: full && processed == claimed.len(),
        })
    }

    async fn deliver(
        &self,
        conn: PooledConn,
        claimed: &[Claimed],
        shutdown: &CancellationToken,
        deadline: Instant,
    ) -> Result<usize, WorkerError> {
        let w = &self.settings.worker;
        let mut mailer = self.mailer.fresh();
        let every = w.record_every.max(1);
        let mut pending: Vec<Outcome> = Vec::with_capacity(every);
        let mut recorder = Recorder {
            conn: Some(conn),
            inflight: None,
            max_attempts: w.max_attempts,
        };
        // When the relay cannot be reached, the remaining rows of the batch
        // fail with the same error instead of each waiting for a connect
        // timeout; they retry after their backoff.
        let mut unreachable: Option<SendFailure> = None;
        let mut done = 0;
        for (i, row) in claimed.iter().enumerate() {
            if shutdown.is_cancelled() || Instant::now() >= deadline {
                recorder.submit(std::mem::take(&mut pending)).await?;
                let rest: Vec<&Claimed> = claimed[i..].iter().collect();
                store::release(recorder.idle().await?, &rest).await?;
                tracing::info!(
                    released = rest.len(),
                    "batch stopped early; untried rows released"
                );
                break;
            }
            let failure = if let Some(f) = &unreachable {
                Some(f.clone())
            } else {
                let r = match mailer.ensure_connected().await {
                    Err(f) => {
                        unreachable = Some(f.clone());
                        Err(f)
                    }
                    Ok(()) => {
                        mailer
                            .send(&Outgoing {
                                id: row.id,
                                to: &row.to_address,
                                subject: &row.subject,
                                body_text: &row.body_text,
                                body_html: row.body_html.as_deref(),
                            })
                            .await
                    }
                };
                r.err()
            };
            let outcome = self.outcome(row, failure);
            pending.push(outcome);
            done += 1;
            if pending.len() >= every {
                recorder
                    .submit(std::mem::replace(&mut pending, Vec::with_capacity(every)))
                    .await?;
            }
        }
        recorder.submit(pending).await?;
        recorder.idle().await?;
        mailer.close().await;
        Ok(done)
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
            finished_at: chrono::Utc::now(),
            failure,
        }
    }
}

/// Writes outcomes while the batch goes on sending, so a database round
/// trip overlaps the next SMTP ones. It owns the batch's connection; at most
/// one write is in flight, so outcomes land in order and a crash leaves at
/// most two windows (`2 × record_every`) of sent-but-unrecorded mails.
struct Recorder {
    conn: Option<PooledConn>,
    inflight: Option<JoinHandle<(PooledConn, QueryResult<usize>)>>,
    max_attempts: u32,
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
        self.inflight = Some(tokio::spawn(async move {
            let res = store::record(&mut conn, &outcomes, max).await;
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
