//! What the module's face, its submit steps and its worker share: the
//! directory port, submit results, the settings, and push events.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use galaxy_queue::Backoff;
use uuid::Uuid;

use crate::proto::PushEvent;

/// Email addresses of accounts (the binary answers from the user cache).
pub trait RecipientDirectory: Send + Sync + 'static {
    fn email(&self, account_id: Uuid) -> Option<String>;
}

/// Which of an account's inbox entries to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxFilter {
    /// Only the entries not yet marked read.
    pub unread_only: bool,
    /// One of the account's entries: list instead the entries after it,
    /// oldest first, at most a page.
    pub after: Option<Uuid>,
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
