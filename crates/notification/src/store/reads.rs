//! Reads for the inbox and the admin surface, and the admin's one write
//! (re-arming a dead-lettered route).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_core::Page;
use serde_json::Value;
use uuid::Uuid;

use super::columns::CHANNEL_PUSH;
use crate::schema::{notification_intents as ni, notification_routes as nr};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = ni)]
pub struct IntentRow {
    pub id: Uuid,
    pub kind: String,
    pub idempotency_key: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = nr)]
pub struct RouteRow {
    pub id: Uuid,
    pub intent_id: Uuid,
    pub channel: String,
    pub account_id: Option<Uuid>,
    pub address: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub skip_reason: Option<String>,
    pub mail_delivery_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// One inbox entry: a push route of the caller joined with its intent.
#[derive(Queryable, Debug)]
pub struct InboxRow {
    pub route_id: Uuid,
    pub intent_id: Uuid,
    pub kind: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

pub async fn inbox(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    unread_only: bool,
    page: Page,
) -> QueryResult<(Vec<InboxRow>, i64)> {
    let base = || {
        let q = nr::table
            .inner_join(ni::table)
            .filter(nr::account_id.eq(account_id))
            .filter(nr::channel.eq(CHANNEL_PUSH))
            .into_boxed();
        if unread_only {
            q.filter(nr::read_at.is_null())
        } else {
            q
        }
    };
    let total: i64 = base().count().get_result(conn).await?;
    let items = base()
        .select((
            nr::id,
            ni::id,
            ni::kind,
            ni::payload,
            nr::created_at,
            nr::read_at,
        ))
        .order((nr::created_at.desc(), nr::id.desc()))
        .offset(page.offset())
        .limit(page.limit())
        .load(conn)
        .await?;
    Ok((items, total))
}

/// The caller's inbox entries after `after` (one of their own), oldest
/// first: the resume cursor of a reconnecting socket. `None` when `after`
/// is not one of the caller's entries. `total` counts every entry after it.
pub async fn inbox_after(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    after: Uuid,
    unread_only: bool,
    limit: i64,
) -> QueryResult<Option<(Vec<InboxRow>, i64)>> {
    let cursor: Option<DateTime<Utc>> = nr::table
        .filter(nr::id.eq(after))
        .filter(nr::account_id.eq(account_id))
        .filter(nr::channel.eq(CHANNEL_PUSH))
        .select(nr::created_at)
        .first(conn)
        .await
        .optional()?;
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    // (created_at, id) order, the reverse of the newest-first listing, so a
    // cursor taken from either reads the same sequence.
    let base = || {
        let q = nr::table
            .inner_join(ni::table)
            .filter(nr::account_id.eq(account_id))
            .filter(nr::channel.eq(CHANNEL_PUSH))
            .filter(
                nr::created_at
                    .gt(cursor)
                    .or(nr::created_at.eq(cursor).and(nr::id.gt(after))),
            )
            .into_boxed();
        if unread_only {
            q.filter(nr::read_at.is_null())
        } else {
            q
        }
    };
    let total: i64 = base().count().get_result(conn).await?;
    let items = base()
        .select((
            nr::id,
            ni::id,
            ni::kind,
            ni::payload,
            nr::created_at,
            nr::read_at,
        ))
        .order((nr::created_at.asc(), nr::id.asc()))
        .limit(limit)
        .load(conn)
        .await?;
    Ok(Some((items, total)))
}

/// Stamps `read_at` on the caller's own push route (first read wins).
/// 0 rows means no such route for this account.
pub async fn mark_read(
    conn: &mut AsyncPgConnection,
    route_id: Uuid,
    account_id: Uuid,
) -> QueryResult<usize> {
    diesel::update(nr::table)
        .filter(nr::id.eq(route_id))
        .filter(nr::account_id.eq(account_id))
        .filter(nr::channel.eq(CHANNEL_PUSH))
        .set(nr::read_at.eq(diesel::dsl::sql::<Nullable<Timestamptz>>(
            "COALESCE(read_at, now())",
        )))
        .execute(conn)
        .await
}

pub async fn list_intents(
    conn: &mut AsyncPgConnection,
    kind: Option<&str>,
    page: Page,
) -> QueryResult<(Vec<IntentRow>, i64)> {
    let base = || {
        let q = ni::table.into_boxed();
        match kind {
            Some(k) => q.filter(ni::kind.eq(k.to_owned())),
            None => q,
        }
    };
    let total = base().count().get_result(conn).await?;
    let rows = base()
        .select(IntentRow::as_select())
        .order((ni::created_at.desc(), ni::id.desc()))
        .offset(page.offset())
        .limit(page.limit())
        .load(conn)
        .await?;
    Ok((rows, total))
}

pub async fn intent(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<IntentRow>> {
    ni::table
        .find(id)
        .select(IntentRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn routes_of_intent(
    conn: &mut AsyncPgConnection,
    intent_id: Uuid,
) -> QueryResult<Vec<RouteRow>> {
    nr::table
        .filter(nr::intent_id.eq(intent_id))
        .select(RouteRow::as_select())
        .order((nr::channel.desc(), nr::created_at.asc(), nr::id.asc()))
        .load(conn)
        .await
}

pub async fn list_routes(
    conn: &mut AsyncPgConnection,
    status: Option<&str>,
    page: Page,
) -> QueryResult<(Vec<RouteRow>, i64)> {
    let base = || {
        let q = nr::table.into_boxed();
        match status {
            Some(s) => q.filter(nr::status.eq(s.to_owned())),
            None => q,
        }
    };
    let total = base().count().get_result(conn).await?;
    let rows = base()
        .select(RouteRow::as_select())
        .order((nr::created_at.desc(), nr::id.desc()))
        .offset(page.offset())
        .limit(page.limit())
        .load(conn)
        .await?;
    Ok((rows, total))
}

pub async fn route(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<RouteRow>> {
    nr::table
        .find(id)
        .select(RouteRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Re-arms a dead-lettered route for a new cycle of attempts, due now.
/// `None` when the route is not dead-lettered (or does not exist).
pub async fn rearm_dead_letter(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<RouteRow>> {
    diesel::update(nr::table)
        .filter(nr::id.eq(id))
        .filter(nr::channel.eq(CHANNEL_PUSH))
        .filter(nr::status.eq("dead_lettered"))
        .set((
            nr::status.eq("pending"),
            nr::attempts.eq(0),
            nr::next_attempt_at.eq(diesel::dsl::now),
            nr::updated_at.eq(diesel::dsl::now),
        ))
        .returning(RouteRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Routes by status and channel (the routes gauge): `(status, channel, n)`.
pub async fn route_counts(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, String, i64)>> {
    nr::table
        .group_by((nr::status, nr::channel))
        .select((nr::status, nr::channel, diesel::dsl::count_star()))
        .load(conn)
        .await
}
