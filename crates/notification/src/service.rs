//! `NotificationService`: the module's public face, and its PostgreSQL
//! implementation.

use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use galaxy_db::{DbError, Pool};
use uuid::Uuid;

use crate::catalog::Intent;
use crate::error::NotificationError;
use crate::model::{NotificationSettings, PendingPush, RecipientDirectory, Submitted};
use crate::outcome::OutcomeRecorder;
use crate::push::PushHub;
use crate::store;
use crate::submit;

/// Submitting notifications and reacting to account deletion.
#[async_trait::async_trait]
pub trait NotificationService: Send + Sync + 'static {
    /// Validates and stores `intent` in its own transaction, then pushes its
    /// push routes to the subscribed gateways.
    async fn submit(&self, intent: Intent) -> Result<Submitted, NotificationError>;

    /// The same inside the caller's transaction (`conn` is in it): intent,
    /// routes and mail deliveries commit or roll back with the caller's
    /// write. Call [`Self::dispatch`] with the result after the commit.
    async fn submit_in(
        &self,
        conn: &mut AsyncPgConnection,
        intent: Intent,
    ) -> Result<PendingPush, NotificationError>;

    /// Pushes what a committed [`Self::submit_in`] produced.
    async fn dispatch(&self, pending: PendingPush);

    /// The account was deleted: its pending and retrying routes become
    /// `skipped` (reason `user_deleted`); no row is deleted. Idempotent (a
    /// repeat skips nothing more); returns how many routes it skipped. The
    /// caller retries on an error (decision HARD-15).
    async fn on_user_deleted(&self, account_id: Uuid) -> Result<usize, NotificationError>;
}

/// The PostgreSQL implementation.
pub struct PgNotificationService {
    pub(crate) pool: Pool,
    pub(crate) hub: Arc<PushHub>,
    directory: Arc<dyn RecipientDirectory>,
    pub(crate) settings: NotificationSettings,
    outcomes: OutcomeRecorder,
}

fn log_submitted(kind: &str, pending: &PendingPush) {
    let Submitted { intent_id, created } = pending.submitted;
    if created {
        tracing::info!(kind, %intent_id, push_routes = pending.events.len(), "notification intent submitted");
    } else {
        tracing::debug!(kind, %intent_id, "repeat submit; nothing created");
    }
}

impl PgNotificationService {
    pub fn new(
        pool: Pool,
        hub: Arc<PushHub>,
        directory: Arc<dyn RecipientDirectory>,
        settings: NotificationSettings,
    ) -> Self {
        Self {
            outcomes: OutcomeRecorder::new(pool.clone()),
            pool,
            hub,
            directory,
            settings,
        }
    }

    pub fn hub(&self) -> &Arc<PushHub> {
        &self.hub
    }

    pub fn settings(&self) -> &NotificationSettings {
        &self.settings
    }

    pub(crate) async fn conn(&self) -> Result<galaxy_db::PooledConn, NotificationError> {
        self.pool
            .get()
            .await
            .map_err(|e| NotificationError::Db(DbError::Pool(e)))
    }

    /// Writes the events of a committed submit to the subscribed gateways
    /// and records the outcome: `delivered`, or due now for the worker.
    async fn push_committed(&self, pending: &PendingPush) {
        if pending.events.is_empty() {
            return;
        }
        let mut ids = Vec::with_capacity(pending.events.len());
        let mut pushed = Vec::with_capacity(pending.events.len());
        for ev in &pending.events {
            ids.push(Uuid::parse_str(&ev.route_id).expect("route ids are UUIDs we made"));
            pushed.push(self.hub.publish(ev));
        }
        let waiting = pushed.iter().filter(|p| !**p).count();
        if let Err(error) = self.outcomes.record(ids, pushed).await {
            // The routes stay pending; the worker takes them when their lease
            // ends (a delivered one may then reach a gateway twice; clients
            // de-duplicate on route_id).
            tracing::warn!(%error, intent_id = %pending.submitted.intent_id,
                "could not record push outcome; the worker will retry");
        }
        if waiting > 0 {
            tracing::info!(intent_id = %pending.submitted.intent_id, routes = waiting,
                "no gateway subscribed; push routes left for the worker");
        }
    }
}

#[async_trait::async_trait]
impl NotificationService for PgNotificationService {
    #[tracing::instrument(skip_all, fields(kind = %intent.kind))]
    async fn submit(&self, intent: Intent) -> Result<Submitted, NotificationError> {
        // A bad intent fails here, before any I/O.
        let prepared = submit::prepare(intent, &*self.directory, &self.settings)?;
        let mut conn = self.conn().await?;
        let submitted = conn
            .transaction(async |c| submit::write(c, &prepared).await)
            .await?;
        // Back to the pool before the outcome is written: the recorder
        // writes many submits' outcomes on a connection of its own.
        drop(conn);
        let kind = prepared.kind();
        let pending = prepared.into_pending(submitted);
        log_submitted(kind, &pending);
        self.push_committed(&pending).await;
        Ok(pending.submitted)
    }

    async fn submit_in(
        &self,
        conn: &mut AsyncPgConnection,
        intent: Intent,
    ) -> Result<PendingPush, NotificationError> {
        let prepared = submit::prepare(intent, &*self.directory, &self.settings)?;
        let submitted = submit::write(conn, &prepared).await?;
        let kind = prepared.kind();
        let pending = prepared.into_pending(submitted);
        log_submitted(kind, &pending);
        Ok(pending)
    }

    async fn dispatch(&self, pending: PendingPush) {
        self.push_committed(&pending).await;
    }

    async fn on_user_deleted(&self, account_id: Uuid) -> Result<usize, NotificationError> {
        let mut conn = self.conn().await?;
        let n = store::skip_user_routes(&mut conn, account_id).await?;
        tracing::info!(account_id = %account_id, routes = n, "routes of deleted user skipped");
        Ok(n)
    }
}
