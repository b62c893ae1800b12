//! The admin views of intents and routes, as the API and the console show
//! them. The intent and route views are read straight from their tables.

use chrono::{DateTime, Utc};
use diesel::{Associations, Identifiable, Queryable, Selectable};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::schema::{notification_intents, notification_routes};

/// A stored intent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Queryable, Selectable, Identifiable)]
#[diesel(table_name = notification_intents)]
pub struct IntentView {
    pub id: Uuid,
    pub kind: String,
    pub idempotency_key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
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
#[derive(
    Debug,
    Clone,
    Serialize,
    Deserialize,
    ToSchema,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
)]
#[diesel(table_name = notification_routes, belongs_to(IntentView, foreign_key = intent_id))]
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

/// One inbox entry: a push notification addressed to the caller, read as
/// its push route joined with its intent.
#[derive(Debug, Serialize, Deserialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = notification_routes)]
pub struct InboxItem {
    /// The route id (use it to mark the entry read, and as the `after`
    /// cursor); the push frame's `id`.
    pub id: Uuid,
    /// The notification (intent) id, shared by every recipient; the push
    /// frame's `event_id`.
    #[diesel(select_expression = notification_intents::id)]
    #[diesel(select_expression_type = notification_intents::id)]
    pub event_id: Uuid,
    #[diesel(select_expression = notification_intents::kind)]
    #[diesel(select_expression_type = notification_intents::kind)]
    pub kind: String,
    /// The kind's payload (see docs/notifications.md).
    #[schema(value_type = Object)]
    #[diesel(select_expression = notification_intents::payload)]
    #[diesel(select_expression_type = notification_intents::payload)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}
