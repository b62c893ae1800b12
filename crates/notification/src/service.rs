//! `NotificationService`: the module's public face, and its PostgreSQL
//! implementation.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use galaxy_db::{DbError, Pool};
use galaxy_queue::Backoff;
use uuid::Uuid;

use crate::catalog::{self, Audience, Intent};
use crate::error::NotificationError;
use crate::proto::PushEvent;
use crate::push::PushHub;
use crate::store::{self, CHANNEL_EMAIL, CHANNEL_PUSH, NewIntent, NewRoute};

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
    events: Vec<PushEvent>,
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
    async fn push_committed(&self, conn: Option<&mut AsyncPgConnection>, pending: &PendingPush) {
        if pending.events.is_empty() {
            return;
        }
        let (mut delivered, mut waiting) = (Vec::new(), Vec::new());
        for ev in &pending.events {
            let id = Uuid::parse_str(&ev.route_id).expect("route ids are UUIDs we made");
            if self.hub.publish(ev) {
                delivered.push(id);
            } else {
                waiting.push(id);
            }
        }
        let result = async {
            let mut pooled;
            let conn = match conn {
                Some(c) => c,
                None => {
                    pooled = self.conn().await?;
                    &mut *pooled
                }
            };
            if !delivered.is_empty() {
                store::mark_pushed(conn, &delivered).await?;
            }
            if !waiting.is_empty() {
                store::make_due(conn, &waiting).await?;
            }
            Ok::<_, NotificationError>(())
        }
        .await;
        if let Err(e) = result {
            // The routes stay pending; the worker takes them when their lease
            // ends (a delivered one may then reach a gateway twice; clients
            // de-duplicate on route_id).
            tracing::warn!(error = %e, intent_id = %pending.submitted.intent_id,
                "could not record push outcome; the worker will retry");
        }
        if !waiting.is_empty() {
            tracing::info!(intent_id = %pending.submitted.intent_id, routes = waiting.len(),
                "no gateway subscribed; push routes left for the worker");
        }
    }

    /// Everything a submit writes, on `conn` (the caller owns the transaction).
    async fn write_intent(
        &self,
        conn: &mut AsyncPgConnection,
        intent: &Intent,
    ) -> Result<PendingPush, NotificationError> {
        let (spec, recipients) = catalog::validate(intent)?;
        let now = Utc::now();
        let intent_id = galaxy_core::new_id();
        let inserted = store::insert_intent(
            conn,
            &NewIntent {
                id: intent_id,
                kind: spec.kind,
                idempotency_key: &intent.idempotency_key,
                payload: &intent.payload,
                created_at: now,
                origin_request_id: galaxy_core::current_request_id(),
            },
        )
        .await?;
        if inserted.is_none() {
            let first = store::intent_id_by_key(conn, spec.kind, &intent.idempotency_key).await?;
            tracing::debug!(kind = spec.kind, intent_id = %first, "repeat submit; nothing created");
            return Ok(PendingPush {
                submitted: Submitted {
                    intent_id: first,
                    created: false,
                },
                events: Vec::new(),
            });
        }

        // Push routes are reserved for one lease: the submitter pushes them
        // after commit; only if it never does (crash) does the worker step in.
        let reserved_until = now
            + chrono::Duration::from_std(self.settings.lease)
                .unwrap_or(chrono::Duration::seconds(30));
        let mut routes = Vec::with_capacity(recipients.len() * 2 + 1);
        let mut events = Vec::new();
        let mut mails: Vec<(Uuid, String)> = Vec::new();
        let email_route =
            |account_id: Option<Uuid>, address: Option<String>, skip: &'static str| {
                NewRoute {
                    id: galaxy_core::new_id(),
                    intent_id,
                    channel: CHANNEL_EMAIL,
                    account_id,
                    // Handed to the mail outbox in this transaction: the route is
                    // delivered from here on and the mail row carries the rest.
                    status: if address.is_some() {
                        "delivered"
                    } else {
                        "skipped"
                    },
                    attempts: i32::from(address.is_some()),
                    skip_reason: address.is_none().then_some(skip),
                    address,
                    next_attempt_at: now,
                }
            };
        match spec.audience {
            Audience::Players => {
                let payload_json = intent.payload.to_string();
                for account_id in &recipients {
                    let id = galaxy_core::new_id();
                    routes.push(NewRoute {
                        id,
                        intent_id,
                        channel: CHANNEL_PUSH,
                        account_id: Some(*account_id),
                        address: None,
                        status: "pending",
                        attempts: 0,
                        next_attempt_at: reserved_until,
                        skip_reason: None,
                    });
                    events.push(event(
                        intent_id,
                        id,
                        *account_id,
                        spec.kind,
                        payload_json.clone(),
                        now,
                    ));
                    let address = self.directory.email(*account_id);
                    let route = email_route(Some(*account_id), address, "no_email_address");
                    if let Some(to) = &route.address {
                        mails.push((route.id, to.clone()));
                    }
                    routes.push(route);
                }
            }
            Audience::Admin => {
                let route = email_route(
                    None,
                    self.settings.admin_email.clone(),
                    "admin_email_not_configured",
                );
                if let Some(to) = &route.address {
                    mails.push((route.id, to.clone()));
                } else {
                    tracing::warn!(
                        kind = spec.kind,
                        intent_id = %intent_id,
                        "admin notification not mailed: BACKEND_NOTIFICATION_ADMIN_EMAIL is empty; route skipped"
                    );
                }
                routes.push(route);
            }
        }
        store::insert_routes(conn, &routes).await?;

        if !mails.is_empty() {
            let (subject, body_text) = catalog::render_mail(spec.kind, &intent.payload);
            let route_ids: Vec<Uuid> = mails.iter().map(|(route_id, _)| *route_id).collect();
            let new_mails: Vec<galaxy_mail::NewMail> = mails
                .into_iter()
                .map(|(route_id, to)| galaxy_mail::NewMail {
                    kind: spec.kind.to_owned(),
                    to,
                    subject: subject.clone(),
                    body_text: body_text.clone(),
                    body_html: None,
                    notification_route_id: Some(route_id),
                })
                .collect();
            // One multi-row INSERT for every mail of the intent.
            let mail_ids = galaxy_mail::enqueue_many(conn, &new_mails).await?;
            store::link_mail(conn, &route_ids, &mail_ids).await?;
        }
        tracing::info!(
            kind = spec.kind,
            intent_id = %intent_id,
            routes = routes.len(),
            "notification intent submitted"
        );
        Ok(PendingPush {
            submitted: Submitted {
                intent_id,
                created: true,
            },
            events,
        })
    }
}

#[async_trait::async_trait]
impl NotificationService for PgNotificationService {
    #[tracing::instrument(skip_all, fields(kind = %intent.kind))]
    async fn submit(&self, intent: Intent) -> Result<Submitted, NotificationError> {
        // Validate before taking a connection: a bad intent costs no I/O.
        catalog::validate(&intent)?;
        let mut conn = self.conn().await?;
        let pending = conn
            .transaction(async |c| self.write_intent(c, &intent).await)
            .await?;
        // The same connection records the push outcome: no second checkout.
        self.push_committed(Some(&mut conn), &pending).await;
        Ok(pending.submitted)
    }

    async fn submit_in(
        &self,
        conn: &mut AsyncPgConnection,
        intent: Intent,
    ) -> Result<PendingPush, NotificationError> {
        self.write_intent(conn, &intent).await
    }

    async fn dispatch(&self, pending: PendingPush) {
        self.push_committed(None, &pending).await;
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
