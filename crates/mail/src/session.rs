//! One SMTP session of a worker batch: it takes the batch's next untried
//! row, sends it, turns the result into an [`Outcome`] and hands that
//! straight to the outcome writer (see `recorder`), so no session waits on
//! the database unless the writer's queue is full.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use galaxy_queue::Backoff;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::smtp::{Mailer, Outgoing, SendFailure};
use crate::store::{Claimed, Outcome, OutcomeFailure};
use crate::worker::WorkerStats;

/// A claimed batch as its sessions share it.
pub(crate) struct Batch {
    pub rows: Vec<Claimed>,
    /// The next untried row: one cursor, so no row of a claim is sent twice.
    pub next: AtomicUsize,
    /// Sessions that can still reach the relay.
    pub connected: AtomicUsize,
    /// No send starts after it: well inside the lease, so a slow relay can
    /// never let another worker claim a row still being sent.
    pub deadline: Instant,
}

impl Batch {
    pub fn new(rows: Vec<Claimed>, sessions: usize, deadline: Instant) -> Self {
        Self {
            rows,
            next: AtomicUsize::new(0),
            connected: AtomicUsize::new(sessions),
            deadline,
        }
    }

    /// Rows no session took (the cursor may run past the end).
    pub fn untried(&self) -> &[Claimed] {
        let tried = self.next.load(Ordering::SeqCst).min(self.rows.len());
        self.rows.get(tried..).unwrap_or_default()
    }
}

/// Turns a try's result into the outcome to write, counting and logging it.
pub(crate) struct Report {
    pub stats: Arc<WorkerStats>,
    pub backoff: Backoff,
}

impl Report {
    pub fn outcome(&self, row: &Claimed, failure: Option<SendFailure>) -> Outcome {
        let email_hash = galaxy_telemetry::email_hash(&row.to_address);
        let failure = match failure {
            None => {
                self.stats.count_sent();
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
                let permanent = matches!(f, SendFailure::Permanent { .. });
                self.stats.count_failed(permanent);
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

/// Sends rows of `batch` until none is left, the batch is stopped
/// (shutdown, deadline, the writer gone) or the relay cannot be reached;
/// returns the session and how many outcomes it handed over. Stop
/// conditions are checked before a row is taken, so every taken row is
/// tried and reported once (unless the writer is gone: then its try stays
/// open and is re-sent after the lease, at least once).
pub(crate) async fn run(
    mut mailer: Mailer,
    batch: Arc<Batch>,
    report: Arc<Report>,
    tx: mpsc::Sender<Outcome>,
    stop: CancellationToken,
) -> (Mailer, usize) {
    let stopped = || stop.is_cancelled() || Instant::now() >= batch.deadline;
    let mut reported = 0;
    // The writer stopped on a database error: stop every session of the
    // batch before its next send, as nothing more could be recorded.
    let hand_over = async |o: Outcome| {
        let ok = tx.send(o).await.is_ok();
        if !ok {
            stop.cancel();
        }
        ok
    };
    while !stopped() {
        let i = batch.next.fetch_add(1, Ordering::SeqCst);
        let Some(row) = batch.rows.get(i) else { break };
        let failure = match mailer.ensure_connected().await {
            Ok(()) => mailer.send(&outgoing(row)).await.err(),
            Err(f) => {
                if hand_over(report.outcome(row, Some(f.clone()))).await {
                    reported += 1;
                }
                // The last session that cannot connect fails the rows no
                // session is left to try, with the same error, instead of
                // each waiting for a connect timeout; they retry after
                // their backoff.
                if batch.connected.fetch_sub(1, Ordering::SeqCst) == 1 {
                    while !stopped() {
                        let j = batch.next.fetch_add(1, Ordering::SeqCst);
                        let Some(rest) = batch.rows.get(j) else { break };
                        if !hand_over(report.outcome(rest, Some(f.clone()))).await {
                            break;
                        }
                        reported += 1;
                    }
                }
                return (mailer, reported);
            }
        };
        if !hand_over(report.outcome(row, failure)).await {
            break;
        }
        reported += 1;
    }
    // The caller closes the session, or keeps it for the next batch.
    (mailer, reported)
}

fn outgoing(row: &Claimed) -> Outgoing<'_> {
    Outgoing {
        id: row.id,
        to: &row.to_address,
        subject: &row.subject,
        body_text: &row.body_text,
        body_html: row.body_html.as_deref(),
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
