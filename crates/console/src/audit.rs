//! The admin audit log (`admin_audit`): one row per admin action, from the
//! admin API (see `audit_api`) or the console. Writing an entry never fails
//! the action it describes: the action already happened, so a failed write
//! is logged as an error instead.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use galaxy_core::{ApiError, Page, Paged};
use galaxy_db::{DbError, Pool};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

diesel::table! {
    admin_audit (id) {
        id -> Uuid,
        at -> Timestamptz,
        admin_id -> Uuid,
        admin_username -> Text,
        channel -> Text,
        action -> Text,
        target -> Nullable<Text>,
        outcome -> Text,
    }
}

/// One audited admin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = admin_audit)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub admin_id: Uuid,
    pub admin_username: String,
    /// `api` or `console`.
    pub channel: String,
    /// API: method and route pattern (`POST /api/v1/admin/users/{id}/block`);
    /// console: a dotted name (`user.block`).
    pub action: String,
    /// What the action named, e.g. `id=6f1c…` (null when nothing).
    pub target: Option<String>,
    /// API: the HTTP status (`200`, `409`, …); console: `ok` or an error code.
    pub outcome: String,
}

#[derive(Insertable)]
#[diesel(table_name = admin_audit)]
struct NewEntry<'a> {
    id: Uuid,
    admin_id: Uuid,
    admin_username: &'a str,
    channel: &'a str,
    action: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
}

/// What is recorded; `at` and `id` are added on write.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub admin_id: Uuid,
    pub admin_username: &'a str,
    pub channel: &'static str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
}

/// The audit log over PostgreSQL.
#[derive(Clone)]
pub struct AuditLog {
    pool: Pool,
}

impl AuditLog {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Appends an entry; a failure is logged, never returned (see module doc).
    pub async fn record(&self, r: Record<'_>) {
        let entry = NewEntry {
            id: galaxy_core::new_id(),
            admin_id: r.admin_id,
            admin_username: r.admin_username,
            channel: r.channel,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
        };
        let written = async {
            let mut conn = self.pool.get().await.map_err(DbError::Pool)?;
            diesel::insert_into(admin_audit::table)
                .values(&entry)
                .execute(&mut conn)
                .await
                .map_err(DbError::Query)
        }
        .await;
        match written {
            Ok(_) => tracing::info!(
                admin_id = %r.admin_id, channel = r.channel, action = r.action,
                target = r.target, outcome = r.outcome, "admin action audited"
            ),
            Err(e) => tracing::error!(
                error = %e, admin_id = %r.admin_id, action = r.action,
                "admin action not written to the audit log"
            ),
        }
    }

    /// Newest first.
    pub async fn list(&self, page: Page) -> Result<Paged<AuditEntry>, ApiError> {
        let mut conn = self.pool.get().await.map_err(DbError::Pool)?;
        let total: i64 = admin_audit::table
            .count()
            .get_result(&mut conn)
            .await
            .map_err(DbError::Query)?;
        let items = admin_audit::table
            .select(AuditEntry::as_select())
            .order((admin_audit::at.desc(), admin_audit::id.desc()))
            .offset(page.offset())
            .limit(page.limit())
            .load(&mut conn)
            .await
            .map_err(DbError::Query)?;
        Ok(Paged::new(items, page, total))
    }
}
