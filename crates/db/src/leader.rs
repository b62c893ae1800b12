//! One leader among the backends sharing a database (SYSTEM.md §12): the
//! holder of a PostgreSQL session-level advisory lock, taken on a dedicated
//! connection outside the pool. When the leader dies its session ends and
//! the lock goes with it; the others try again every `retry` and one of
//! them takes over. A leader that cannot reach its connection any more
//! steps down at once (before it knows whether the lock is gone), so two
//! leaders never act together; for a moment there may be none.

use std::time::Duration;

use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dsn::DatabaseUrl;
use crate::pool::establish;

/// How a backend learns whether it leads. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    /// A handle that always leads: one backend alone, and tests of workers.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // The sender is dropped; the value stays readable.
        drop(tx);
        Self { rx }
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when this backend is not (or no longer) the leader.
    pub async fn lost(&self) {
        let mut rx = self.rx.clone();
        // An error means the election ended (shutdown or `always`): then
        // leadership as last seen never changes again.
        let ended = rx.wait_for(|leads| !leads).await.is_err();
        if ended && *rx.borrow() {
            std::future::pending::<()>().await;
        }
    }
}

/// Tuning of [`spawn`].
#[derive(Clone, Copy, Debug)]
pub struct ElectionSettings {
    /// Identifies the role; every backend of a deployment uses the same.
    pub lock_key: i64,
    /// How often a follower tries to take the lock, and how often the
    /// leader checks that its connection still answers.
    pub retry: Duration,
}

#[derive(diesel::QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    taken: bool,
}

async fn try_lock(conn: &mut AsyncPgConnection, key: i64) -> Result<bool, String> {
    let rows: Vec<Taken> =
        diesel::sql_query(format!("SELECT pg_try_advisory_lock({key}) AS taken"))
            .load(conn)
            .await
            .map_err(|e| e.to_string())?;
    Ok(matches!(rows.as_slice(), [Taken { taken: true }, ..]))
}

pub(crate) async fn ping(conn: &mut AsyncPgConnection, bound: Duration) -> Result<(), String> {
    match tokio::time::timeout(bound, diesel::sql_query("SELECT 1").execute(conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// The election's state between rounds.
struct Election {
    url: DatabaseUrl,
    settings: ElectionSettings,
    tx: watch::Sender<bool>,
    conn: Option<AsyncPgConnection>,
}

impl Election {
    fn set(&self, leads: bool) {
        self.tx
            .send_if_modified(|now| std::mem::replace(now, leads) != leads);
    }

    fn leads(&self) -> bool {
        *self.tx.borrow()
    }

    /// One round: a follower tries the lock, the leader checks that its
    /// session still answers.
    async fn round(&mut self) {
        let (leads_now, key, bound) = (self.leads(), self.settings.lock_key, self.settings.retry);
        let url = &self.url;
        let conn = &mut self.conn;
        let step = async {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(establish(url).await.map_err(|e| e.to_string())?),
            };
            if leads_now {
                ping(c, bound).await.map(|()| true)
            } else {
                try_lock(c, key).await
            }
        };
        match step.await {
            Ok(leads) => {
                if leads && !leads_now {
                    tracing::info!(lock_key = key, "leadership taken");
                }
                self.set(leads);
            }
            Err(e) => {
                if leads_now {
                    tracing::warn!(error = %e, "leader connection lost; stepping down");
                } else {
                    tracing::debug!(error = %e, "leader election cannot reach PostgreSQL");
                }
                self.set(false);
                // A fresh connection next round; the old session (and any
                // lock it held) ends when PostgreSQL notices.
                self.conn = None;
            }
        }
    }
}

/// Starts the election: the first round is over when this returns (so
/// workers started next know at once whether they lead); the task runs the
/// others every `retry` until `shutdown`.
pub async fn start(
    url: DatabaseUrl,
    settings: ElectionSettings,
    shutdown: CancellationToken,
) -> (Leadership, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let mut election = Election {
        url,
        settings,
        tx,
        conn: None,
    };
    let first_bound = settings.retry.max(Duration::from_secs(5));
    if tokio::time::timeout(first_bound, election.round())
        .await
        .is_err()
    {
        election.conn = None;
    }
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(settings.retry) => {}
            }
            election.round().await;
        }
        // Dropping the connection ends the session and releases the lock
        // at once, so a peer takes over without waiting for a timeout.
        election.set(false);
        drop(election.conn.take());
    });
    (Leadership { rx }, task)
}
