//! Database functions over the notification tables. Plain async functions on
//! a connection, so they run inside whatever transaction the caller holds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, Double, Int4, Int8, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_db::column;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::{notification_intents as ni, notification_routes as nr};

mod columns;
mod reads;
pub use columns::{CHANNEL_EMAIL, CHANNEL_PUSH, STATUSES};
pub use reads::{
    inbox, inbox_after, intent, list_intents, list_routes, mark_read, rearm_dead_letter, route,
    route_counts, routes_of,
};

/// An intent about to be written.
pub struct NewIntent<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub idempotency_key: &'a str,
    pub payload: &'a Value,
    pub created_at: DateTime<Utc>,
    /// The request that submitted the intent, if any.
    pub origin_request_id: Option<&'a str>,
}

/// A route about to be written with its intent.
#[derive(Debug, Clone)]
pub struct NewRoute {
    pub id: Uuid,
    pub channel: &'static str,
    pub account_id: Option<Uuid>,
    pub address: Option<String>,
    pub status: &'static str,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub skip_reason: Option<&'static str>,
    /// The mail delivery this email route hands over to (its id is chosen
    /// up front; the FK is checked at commit, see migration 00004).
    pub mail_delivery_id: Option<Uuid>,
}

/// Writes the intent and all its routes in one statement, unless
/// (kind, idempotency_key) exists: then nothing is written and `false` comes
/// back. A concurrent transaction writing the same key makes this one wait
/// on the unique index until it ends, then take the `false` branch.
pub async fn insert_intent_with_routes(
    conn: &mut AsyncPgConnection,
    intent: &NewIntent<'_>,
    routes: &[NewRoute],
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Written {
        #[diesel(sql_type = Int8)]
        routes: i64,
    }
    // Route columns as arrays rather than multi-row VALUES: one statement
    // text whatever the count. Left unprepared (`sql_query`): its best plan
    // depends on the arrays' length (PERF-1).
    let written: Written = diesel::sql_query(
        "WITH intent AS ( \
             INSERT INTO notification_intents \
                 (id, kind, idempotency_key, payload, created_at, origin_request_id) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (kind, idempotency_key) DO NOTHING \
             RETURNING id, created_at), \
         routes AS ( \
             INSERT INTO notification_routes \
                 (id, intent_id, channel, account_id, address, status, attempts, \
                  next_attempt_at, skip_reason, mail_delivery_id, created_at, updated_at) \
             SELECT r.id, intent.id, r.channel, r.account_id, r.address, r.status, r.attempts, \
                    r.next_attempt_at, r.skip_reason, r.mail_delivery_id, \
                    intent.created_at, intent.created_at \
             FROM intent, unnest($7::uuid[], $8::text[], $9::uuid[], $10::text[], $11::text[], \
                                 $12::int4[], $13::timestamptz[], $14::text[], $15::uuid[]) \
                  AS r(id, channel, account_id, address, status, attempts, next_attempt_at, \
                       skip_reason, mail_delivery_id) \
             RETURNING 1) \
         SELECT count(*) AS routes FROM routes",
    )
    .bind::<SqlUuid, _>(intent.id)
    .bind::<Text, _>(intent.kind)
    .bind::<Text, _>(intent.idempotency_key)
    .bind::<Jsonb, _>(intent.payload)
    .bind::<Timestamptz, _>(intent.created_at)
    .bind::<Nullable<Text>, _>(intent.origin_request_id)
    .bind::<Array<SqlUuid>, _>(column(routes, |r| r.id))
    .bind::<Array<Text>, _>(column(routes, |r| r.channel))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(routes, |r| r.account_id))
    .bind::<Array<Nullable<Text>>, _>(column(routes, |r| r.address.as_deref()))
    .bind::<Array<Text>, _>(column(routes, |r| r.status))
    .bind::<Array<Int4>, _>(column(routes, |r| r.attempts))
    .bind::<Array<Timestamptz>, _>(column(routes, |r| r.next_attempt_at))
    .bind::<Array<Nullable<Text>>, _>(column(routes, |r| r.skip_reason))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(routes, |r| r.mail_delivery_id))
    .get_result(conn)
    .await?;
    // Every intent has at least one route (validation), so none means the
    // intent already existed.
    Ok(written.routes > 0)
}

pub async fn intent_id_by_key(
    conn: &mut AsyncPgConnection,
    kind: &str,
    key: &str,
) -> QueryResult<Uuid> {
    ni::table
        .filter(ni::kind.eq(kind))
        .filter(ni::idempotency_key.eq(key))
        .select(ni::id)
        .get_result(conn)
        .await
}

/// Records what happened right after submit to a batch of push routes still
/// `pending`: `pushed` → `delivered` (one attempt); otherwise due for the
/// worker now. One statement for any number of submits' routes.
pub async fn record_push_outcomes(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    pushed: &[bool],
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE notification_routes r SET \
             status = CASE WHEN o.pushed THEN 'delivered' ELSE r.status END, \
             attempts = r.attempts + o.pushed::int, \
             next_attempt_at = CASE WHEN o.pushed THEN r.next_attempt_at ELSE now() END, \
             updated_at = now() \
         FROM unnest($1::uuid[], $2::bool[]) AS o(id, pushed) \
         WHERE r.id = o.id AND r.status = 'pending'",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<diesel::sql_types::Bool>, _>(pushed)
    .execute(conn)
    .await
}

/// A deleted user's undelivered routes become `skipped`; rows stay for audit.
/// Email routes whose mail is already in the outbox keep following it (the
/// mail is not withdrawn, so the route says what became of it).
pub async fn skip_user_routes(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
) -> QueryResult<usize> {
    diesel::update(nr::table)
        .filter(nr::account_id.eq(account_id))
        .filter(nr::status.eq_any(["pending", "retrying"]))
        .filter(nr::mail_delivery_id.is_null())
        .set((
            nr::status.eq("skipped"),
            nr::skip_reason.eq("user_deleted"),
            nr::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

/// A push route claimed by the worker, with what its event needs.
#[derive(QueryableByName, Debug)]
pub struct ClaimedRoute {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub intent_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub account_id: Option<Uuid>,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// The request that submitted the intent (logged with each retry).
    #[diesel(sql_type = Nullable<Text>)]
    pub origin_request_id: Option<String>,
}

/// Claims up to `limit` due push routes. The claim is one statement: rows are
/// locked with `FOR UPDATE SKIP LOCKED` (so concurrent workers take disjoint
/// sets) and their `next_attempt_at` is pushed `lease` ahead, so a process
/// that dies after claiming leaves them due again once the lease runs out.
pub async fn claim_due_push(
    conn: &mut AsyncPgConnection,
    limit: u32,
    lease: Duration,
) -> QueryResult<Vec<ClaimedRoute>> {
    galaxy_db::sql(
        "WITH due AS ( \
             SELECT id FROM notification_routes \
             WHERE status IN ('pending', 'retrying') AND channel = 'push' \
               AND next_attempt_at <= now() \
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         UPDATE notification_routes r \
         SET next_attempt_at = now() + make_interval(secs => $2), updated_at = now() \
         FROM due, notification_intents i \
         WHERE r.id = due.id AND i.id = r.intent_id \
         RETURNING r.id, r.intent_id, r.account_id, r.attempts, i.kind, i.payload, i.created_at, \
                   i.origin_request_id",
    )
    .bind::<Int8, _>(i64::from(limit))
    .bind::<Double, _>(lease.as_secs_f64())
    .load(conn)
    .await
}

/// Routes the worker wrote to a gateway.
pub async fn mark_delivered(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(nr::table)
        .filter(nr::id.eq_any(ids))
        .filter(nr::status.eq_any(["pending", "retrying"]))
        .set((
            nr::status.eq("delivered"),
            nr::attempts.eq(nr::attempts + 1),
            nr::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

/// Failed attempts: `retrying` after `delays[i]`, or `dead_lettered` once
/// the attempt count reaches `max_attempts`. Routes skipped meanwhile (user
/// deleted) are left alone.
pub async fn record_failures(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    delays: &[f64],
    max_attempts: u32,
    error: &str,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE notification_routes r SET \
             attempts = r.attempts + 1, \
             status = CASE WHEN r.attempts + 1 >= $3 THEN 'dead_lettered' ELSE 'retrying' END, \
             next_attempt_at = now() + make_interval(secs => f.delay), \
             last_error = $4, updated_at = now() \
         FROM unnest($1::uuid[], $2::float8[]) AS f(id, delay) \
         WHERE r.id = f.id AND r.status IN ('pending', 'retrying')",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Double>, _>(delays)
    .bind::<Int4, _>(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .bind::<Text, _>(error)
    .execute(conn)
    .await
}

/// An email route follows its mail (called by the outbox inside the
/// transaction that writes the mail's state): mail `sent` → `delivered`,
/// `retrying` → `retrying`, `dead_lettered` → `dead_lettered`, re-armed by a
/// resend → `pending`; `last_error` is the mail's. Each try counts as an
/// attempt. Only the route linked to that delivery (`mail_delivery_id`) is
/// touched, never a `skipped` one.
pub async fn follow_mail(
    conn: &mut AsyncPgConnection,
    changes: &[galaxy_mail::DeliveryChange],
) -> QueryResult<usize> {
    use galaxy_mail::DeliveryState;
    if changes.is_empty() {
        return Ok(0);
    }
    let status = |c: &galaxy_mail::DeliveryChange| match c.state {
        DeliveryState::Sent => "delivered",
        DeliveryState::Retrying => "retrying",
        DeliveryState::DeadLettered => "dead_lettered",
        DeliveryState::Rearmed => "pending",
    };
    diesel::sql_query(
        "UPDATE notification_routes r SET \
             status = c.status, \
             attempts = CASE WHEN c.status = 'pending' THEN r.attempts ELSE r.attempts + 1 END, \
             last_error = c.last_error, updated_at = now() \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) \
              AS c(route_id, delivery_id, status, last_error) \
         WHERE r.id = c.route_id AND r.mail_delivery_id = c.delivery_id \
           AND r.status <> 'skipped'",
    )
    .bind::<Array<SqlUuid>, _>(column(changes, |c| c.notification_route_id))
    .bind::<Array<SqlUuid>, _>(column(changes, |c| c.delivery_id))
    .bind::<Array<Text>, _>(column(changes, status))
    .bind::<Array<Nullable<Text>>, _>(column(changes, |c| c.last_error.as_deref()))
    .execute(conn)
    .await
}
