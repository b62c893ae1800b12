//! `NotificationService`: the module's public face, and its PostgreSQL
//! implementation.

use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use galaxy_core::Page;
use galaxy_db::{DbError, Pool};
use uuid::Uuid;

use crate::admin::NotificationAdmin;
use crate::catalog::Intent;
use crate::error::NotificationError;
use crate::model::{InboxFilter, NotificationSettings, PendingPush, RecipientDirectory, Submitted};
use crate::outcome::OutcomeRecorder;
use crate::push::PushHub;
use crate::store;
use crate::submit;
use crate::views::InboxItem;

/// Submitting notifications, the user inbox, reacting to account deletion,
/// and (through [`NotificationAdmin`]) the admin surface.
#[async_trait::async_trait]
pub trait NotificationService: NotificationAdmin + Send + Sync + 'static {
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

    /// A page of the account's inbox (its push notifications), newest
    /// first; with `filter.after` (one of its entries) instead the entries
    /// after it, oldest first, at most a page — `None` when `after` is not
    /// one of its entries. The entries, the total, and the page served.
    async fn inbox(
        &self,
        account_id: Uuid,
        filter: InboxFilter,
        page: Page,
    ) -> Result<Option<(Vec<InboxItem>, i64, Page)>, NotificationError>;

    /// Marks one of the account's entries read (idempotent); `false` when
    /// it is not one of the account's.
    async fn mark_read(&self, route_id: Uuid, account_id: Uuid) -> Result<bool, NotificationError>;
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
            // Route ids are UUIDs this module made; one that is not cannot
            // be recorded, so it is not pushed here: the worker delivers it.
            let Ok(id) = Uuid::parse_str(&ev.route_id) else {
                tracing::error!(route_id = %ev.route_id, "push event with a malformed route id; left for the worker");
                continue;
            };
            ids.push(id);
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

    async fn inbox(
        &self,
        account_id: Uuid,
        InboxFilter { unread_only, after }: InboxFilter,
        page: Page,
    ) -> Result<Option<(Vec<InboxItem>, i64, Page)>, NotificationError> {
        let mut conn = self.conn().await?;
        let (rows, total, page) = match after {
            None => {
                let (rows, total) = store::inbox(&mut conn, account_id, unread_only, page).await?;
                (rows, total, page)
            }
            Some(after) => {
                let found =
                    store::inbox_after(&mut conn, account_id, after, unread_only, page.limit())
                        .await?;
                let Some((rows, total)) = found else {
                    return Ok(None);
                };
                // A cursor page is one page, whatever `page` asked.
                (rows, total, Page { page: 1, ..page })
            }
        };
        Ok(Some((rows, total, page)))
    }

    async fn mark_read(&self, route_id: Uuid, account_id: Uuid) -> Result<bool, NotificationError> {
        let mut conn = self.conn().await?;
        Ok(store::mark_read(&mut conn, route_id, account_id).await? > 0)
    }
}
