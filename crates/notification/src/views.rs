//! The admin views of intents and routes, as the API and the console show
//! them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{IntentRow, RouteRow};

/// A stored intent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IntentView {
    pub id: Uuid,
    pub kind: String,
    pub idempotency_key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl From<IntentRow> for IntentView {
    fn from(r: IntentRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            idempotency_key: r.idempotency_key,
            payload: r.payload,
            created_at: r.created_at,
        }
    }
}

/// An intent with every route it materialised.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IntentDetail {
    pub id: Uuid,
    pub kind: String,
    pub idempotency_key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub routes: Vec<RouteView>,
}

/// One delivery route: one recipient on one channel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RouteView {
    pub id: Uuid,
    pub intent_id: Uuid,
    /// `push` or `email`.
    pub channel: String,
    pub account_id: Option<Uuid>,
    /// Email routes: the address the mail was enqueued for.
    pub address: Option<String>,
    /// `pending`, `retrying`, `delivered`, `skipped`, `dead_lettered`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Why a `skipped` route was not delivered (`user_deleted`,
    /// `admin_email_not_configured`, `no_email_address`).
    pub skip_reason: Option<String>,
    /// Email routes: the mail delivery (see /api/v1/admin/mail/deliveries/{id}).
    pub mail_delivery_id: Option<Uuid>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RouteRow> for RouteView {
    fn from(r: RouteRow) -> Self {
        Self {
            id: r.id,
            intent_id: r.intent_id,
            channel: r.channel,
            account_id: r.account_id,
            address: r.address,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            skip_reason: r.skip_reason,
            mail_delivery_id: r.mail_delivery_id,
            read_at: r.read_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One inbox entry: a push notification addressed to the caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxItem {
    /// The route id (use it to mark the entry read, and as the `after`
    /// cursor); the push frame's `id`.
    pub id: Uuid,
    /// The notification (intent) id, shared by every recipient; the push
    /// frame's `event_id`.
    pub event_id: Uuid,
    pub kind: String,
    /// The kind's payload (see docs/notifications.md).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}
