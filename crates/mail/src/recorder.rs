//! The outcome writer: one task, fed by the sessions through a bounded
//! channel, that writes every outcome queued since its last write in one
//! statement on its own pooled connection. While a write is in flight the
//! next window grows, so the writer keeps up with any number of sessions
//! and a slow statement holds no session back until the queue is full.
//!
//! One writer, one write at a time: outcomes land in the order they were
//! reported. It lives across the full batches of a backlog (the last
//! outcomes of one batch are written while the next one sends) and is
//! flushed by the first batch that is not full, by an error or at shutdown.

use std::sync::Arc;
use std::time::Duration;

use galaxy_db::Pool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::outcomes::DeliveryOutcomes;
use crate::store::{self, Outcome};
use crate::worker::WorkerError;

pub(crate) struct Recorder {
    tx: mpsc::Sender<Outcome>,
    task: JoinHandle<Result<(), WorkerError>>,
}

impl Recorder {
    /// Starts the writer. `queue` bounds the outcomes waiting while a write
    /// is in flight (and so the largest window): a session that finds it
    /// full waits, which bounds the mails a crash can make go out twice.
    /// A write starts once `every` outcomes are queued, or [`LINGER`] after
    /// the first.
    pub fn start(
        pool: Pool,
        (queue, every): (usize, usize),
        max_attempts: u32,
        port: Arc<dyn DeliveryOutcomes>,
    ) -> Self {
        let queue = queue.max(1);
        let every = every.clamp(1, queue);
        let (tx, rx) = mpsc::channel(queue);
        let task = tokio::spawn(write_all(pool, rx, queue, every, max_attempts, port));
        Self { tx, task }
    }

    pub fn sender(&self) -> mpsc::Sender<Outcome> {
        self.tx.clone()
    }

    /// The writer has stopped: it only does on an error, which
    /// [`Recorder::finish`] returns.
    pub fn stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Writes what is queued and stops; every sender must be gone.
    pub async fn finish(self) -> Result<(), WorkerError> {
        drop(self.tx);
        self.task
            .await
            .map_err(|e| WorkerError::Pool(format!("outcome writer failed: {e}")))?
    }
}

/// The longest the writer waits for a window of `record_every` outcomes.
const LINGER: Duration = Duration::from_millis(3);

async fn write_all(
    pool: Pool,
    mut rx: mpsc::Receiver<Outcome>,
    queue: usize,
    every: usize,
    max_attempts: u32,
    port: Arc<dyn DeliveryOutcomes>,
) -> Result<(), WorkerError> {
    // Taken up front, so the first window does not wait for the pool.
    let mut conn = pool
        .get()
        .await
        .map_err(|e| WorkerError::Pool(e.to_string()))?;
    let mut window = Vec::with_capacity(queue);
    // Waits for one outcome, then takes every one queued since.
    while rx.recv_many(&mut window, queue).await > 0 {
        // Each statement has a fixed cost in PostgreSQL CPU, which is what
        // limits a backlog: a short wait for a window of `every` cut the
        // statements by almost half in the bench. The sessions go on
        // sending meanwhile, and a closed channel (the end of a batch that
        // was not full) ends the wait at once.
        let until = tokio::time::Instant::now() + LINGER;
        while window.len() < every {
            let room = queue - window.len();
            match tokio::time::timeout_at(until, rx.recv_many(&mut window, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // On an error the channel closes with this task: the sessions stop
        // before their next send, and the tries not written stay open until
        // their lease ends (then they are sent again: at least once).
        store::record(&mut conn, &window, max_attempts, port.as_ref()).await?;
        window.clear();
    }
    Ok(())
}
