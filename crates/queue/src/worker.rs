use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows claimed and handled.
    pub processed: usize,
    /// The batch was full: more rows are probably due, run again at once.
    pub full: bool,
}

/// Runs `batch` every `interval` until `shutdown` is cancelled.
///
/// A full batch is followed immediately by the next one, so a backlog drains
/// at full speed while an idle queue costs one query per interval. A batch is
/// never interrupted: shutdown is observed between batches, so the current
/// batch finishes (the caller bounds the whole drain). A failed batch is
/// logged and retried at the next tick; the rows it claimed were released by
/// its rolled-back transaction.
pub async fn run_periodic<F, Fut, E>(
    name: &'static str,
    interval: Duration,
    shutdown: CancellationToken,
    mut batch: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<BatchOutcome, E>>,
    E: Display,
{
    tracing::info!(worker = name, interval = ?interval, "worker started");
    loop {
        let started = Instant::now();
        let span = tracing::info_span!("worker_batch", worker = name);
        let outcome = batch().instrument(span.clone()).await;
        let elapsed = started.elapsed();
        galaxy_telemetry::record_worker_batch(
            name,
            match &outcome {
                Ok(o) if o.processed > 0 => "processed",
                Ok(_) => "idle",
                Err(_) => "failed",
            },
            elapsed,
        );
        let again_now = match outcome {
            Ok(o) => {
                if o.processed > 0 {
                    span.in_scope(|| {
                        tracing::info!(
                            worker = name,
                            processed = o.processed,
                            duration_ms = elapsed.as_secs_f64() * 1000.0,
                            "batch done"
                        );
                    });
                }
                o.full
            }
            Err(e) => {
                span.in_scope(|| tracing::warn!(worker = name, error = %e, "batch failed"));
                false
            }
        };
        if shutdown.is_cancelled() {
            break;
        }
        if !again_now {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
    tracing::info!(worker = name, "worker stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::task::JoinHandle;

    use super::*;

    /// Spawns `run_periodic` over a batch that answers `outcome(n)` on its
    /// `n`th call (from 0); the call counter, the shutdown token, the task.
    fn spawn_counted(
        interval: Duration,
        outcome: impl Fn(usize) -> Result<BatchOutcome, &'static str> + Send + 'static,
    ) -> (Arc<AtomicUsize>, CancellationToken, JoinHandle<()>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let c = Arc::clone(&calls);
        let task = tokio::spawn(run_periodic(
            "test",
            interval,
            shutdown.clone(),
            move || {
                let result = outcome(c.fetch_add(1, Ordering::SeqCst));
                async move { result }
            },
        ));
        (calls, shutdown, task)
    }

    #[tokio::test(start_paused = true)]
    async fn drains_full_batches_then_waits_and_stops_on_shutdown() {
        // Three full batches of backlog, then idle.
        let (calls, shutdown, task) = spawn_counted(Duration::from_secs(2), |n| {
            Ok(BatchOutcome {
                processed: 10,
                full: n < 3,
            })
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "backlog drained without waiting"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            5,
            "then one batch per interval"
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_batch_is_retried_next_tick() {
        let (calls, shutdown, task) =
            spawn_counted(Duration::from_secs(1), |_| Err("database down"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        shutdown.cancel();
        task.await.unwrap();
    }
}
