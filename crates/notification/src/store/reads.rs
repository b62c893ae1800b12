//! Reads for the inbox and the admin surface, and the admin's one write
//! (re-arming a dead-lettered route).

use chrono::{DateTime, Utc};
use diesel::dsl::{InnerJoin, IntoBoxed};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_core::{Page, Paged};
use uuid::Uuid;

use super::columns::CHANNEL_PUSH;
use crate::schema::{notification_intents as ni, notification_routes as nr};
use crate::views::{InboxItem, IntentView, RouteView};

/// Defines `$name`: one page of `$table`'s rows as `$row`, newest first,
/// with the count of every row that matches (the `total` of the
/// [`Paged`]); a `Some` filter keeps only the rows whose `$column` equals it.
macro_rules! newest_first_page {
    ($name:ident: $table:ident as $row:ty, filtered by $column:ident) => {
        pub async fn $name(
            conn: &mut AsyncPgConnection,
            $column: Option<&str>,
            page: Page,
        ) -> QueryResult<Paged<$row>> {
            let base = || {
                let q = $table::table.into_boxed();
                match $column {
                    Some(v) => q.filter($table::$column.eq(v.to_owned())),
                    None => q,
                }
            };
            let total = base().count().get_result(conn).await?;
            let rows = base()
                .select(<$row>::as_select())
                .order(($table::created_at.desc(), $table::id.desc()))
                .offset(page.offset())
                .limit(page.limit())
                .load(conn)
                .await?;
            Ok(Paged::new(rows, page, total))
        }
    };
}

/// Defines `$name`: `$table`'s row with a primary key as `$row`, if any.
macro_rules! row_by_id {
    ($name:ident: $table:ident as $row:ty) => {
        pub async fn $name(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<$row>> {
            $table::table
                .find(id)
                .select(<$row>::as_select())
                .first(conn)
                .await
                .optional()
        }
    };
}

/// The caller's push routes joined with their intents, as the inbox reads
/// them (only the unread ones with `unread_only`).
fn inbox_entries<'a>(
    account_id: Uuid,
    unread_only: bool,
) -> IntoBoxed<'a, InnerJoin<nr::table, ni::table>, Pg> {
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
}

pub async fn inbox(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    unread_only: bool,
    page: Page,
) -> QueryResult<(Vec<InboxItem>, i64)> {
    let total: i64 = inbox_entries(account_id, unread_only)
        .count()
        .get_result(conn)
        .await?;
    let items = inbox_entries(account_id, unread_only)
        .select(InboxItem::as_select())
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
) -> QueryResult<Option<(Vec<InboxItem>, i64)>> {
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
        inbox_entries(account_id, unread_only).filter(
            nr::created_at
                .gt(cursor)
                .or(nr::created_at.eq(cursor).and(nr::id.gt(after))),
        )
    };
    let total: i64 = base().count().get_result(conn).await?;
    let items = base()
        .select(InboxItem::as_select())
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

newest_first_page!(list_intents: ni as IntentView, filtered by kind);
newest_first_page!(list_routes: nr as RouteView, filtered by status);
row_by_id!(intent: ni as IntentView);
row_by_id!(route: nr as RouteView);

/// Every route `intent` materialised, push routes first.
pub async fn routes_of(
    conn: &mut AsyncPgConnection,
    intent: &IntentView,
) -> QueryResult<Vec<RouteView>> {
    RouteView::belonging_to(intent)
        .select(RouteView::as_select())
        .order((nr::channel.desc(), nr::created_at.asc(), nr::id.asc()))
        .load(conn)
        .await
}

/// Re-arms a dead-lettered route for a new cycle of attempts, due now.
/// `None` when the route is not dead-lettered (or does not exist).
pub async fn rearm_dead_letter(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<RouteView>> {
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
        .returning(RouteView::as_returning())
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
