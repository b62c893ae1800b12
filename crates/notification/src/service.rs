//! `NotificationService`: the module's public face, and its PostgreSQL
//! implementation.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use galaxy_db::{DbError, Pool};
use galaxy_queue::Backoff;
use uuid::Uuid;

use crate::catalog::Intent;
use crate::error::NotificationError;
use crate::outcome::OutcomeRecorder;
use crate::proto::PushEvent;
use crate::push::PushHub;
use crate::store;
use crate::submit;

/// Email addresses of accounts (the binary answers from the user cache).
pub trait RecipientDirectory: Send + Sync + 'static {
    fn email(&self, account_id: Uuid) -> Option<String>;
}

/// What a submit produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub intent_id: Uuid,
    /// False when (kind, idempotency_key) already existed: nothing was created
    /// and `intent_id` is the first intent's.
    pub created: bool,
}

/// The push events of a submit made inside a caller's transaction: hand it
/// to [`NotificationService::dispatch`] after the transaction commits. If it
/// is dropped instead (rollback, crash), nothing is lost: the routes were
/// never committed, or the worker pushes them once their lease expires.
#[must_use = "dispatch it after the transaction commits"]
#[derive(Debug)]
pub struct PendingPush {
    pub submitted: Submitted,
    pub(crate) events: Vec<PushEvent>,
}

impl PendingPush {
    /// The push events waiting for the commit.
    pub fn events(&self) -> &[PushEvent] {
        &self.events
    }
}

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
    /// `skipped` (reason `user_deleted`); no row is deleted.
    async fn on_user_deleted(&self, account_id: Uuid);
}

/// Tuning of submit and the worker.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// `BACKEND_NOTIFICATION_WORKER_INTERVAL`.
    pub worker_interval: Duration,
    /// `BACKEND_NOTIFICATION_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `BACKEND_NOTIFICATION_ADMIN_EMAIL`; `None` → admin routes `skipped`.
    pub admin_email: Option<String>,
    /// Delay between push attempts when no gateway is subscribed.
    pub backoff: Backoff,
    /// How long a claimed (or just submitted) push route is reserved before
    /// the worker may take it again: covers a process dying mid-delivery.
    pub lease: Duration,
    /// Routes claimed per worker batch.
    pub batch_size: u32,
}

impl NotificationSettings {
    /// Defaults derived from the contract's variables: retries start one
    /// worker interval apart and double up to 5 minutes (see
    /// docs/decisions.md NOTIF-2).
    pub fn new(worker_interval: Duration, max_attempts: u32, admin_email: Option<String>) -> Self {
        Self {
            worker_interval,
            max_attempts: max_attempts.max(1),
            admin_email: admin_email.filter(|e| !e.trim().is_empty()),
            backoff: Backoff::new(worker_interval, Duration::from_secs(300)),
            lease: Duration::from_secs(30),
            batch_size: 100,
        }
    }
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

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn event(
    intent_id: Uuid,
    route_id: Uuid,
    account_id: Uuid,
    kind: &str,
    payload_json: String,
    created_at: DateTime<Utc>,
) -> PushEvent {
    PushEvent {
        event_id: intent_id.to_string(),
        route_id: route_id.to_string(),
        account_id: account_id.to_string(),
        kind: kind.to_owned(),
        payload_json,
        created_at: rfc3339(created_at),
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

    async fn on_user_deleted(&self, account_id: Uuid) {
        let result = async {
            let mut conn = self.conn().await?;
            Ok::<_, NotificationError>(store::skip_user_routes(&mut conn, account_id).await?)
        }
        .await;
        match result {
            Ok(n) => {
                tracing::info!(account_id = %account_id, routes = n, "routes of deleted user skipped")
            }
            Err(e) => tracing::error!(account_id = %account_id, error = %e,
                "could not skip the routes of a deleted user"),
        }
    }
}
