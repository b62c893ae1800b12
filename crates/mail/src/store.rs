//! Database side of the outbox: claim, record, release, resend, listings.
//!
//! Crash safety (claim with a lease): a batch is claimed in ONE short
//! statement that locks due rows with `FOR UPDATE SKIP LOCKED`, pushes their
//! `next_attempt_at` forward by the lease, counts the try in
//! `cycle_attempts` and inserts an open `mail_attempts` row (outcome NULL).
//! It commits before any SMTP traffic, so no transaction is held open across
//! the network. While the lease runs, other workers do not see the rows
//! (they are not due); if this process dies, the rows become due again when
//! the lease ends and the next claim closes the dead try as `interrupted`.
//! Outcomes are written as sends complete, by one writer that takes every
//! outcome queued during its previous write (see `recorder`); the queue
//! holds at most a batch (or `record_every` per SMTP session, if more), and
//! a session that finds it full waits. So a crash can re-send at most the
//! mails of the write in flight, of the queue and two per session. The worker claims at most one
//! batch ahead of the one it sends; no send starts later than half a
//! batch's lease after its claim. Rows claimed but not yet tried when the
//! worker stops (the batch claimed ahead included) are released at once
//! (their open attempt removed, the try uncounted).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Double, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use galaxy_core::{Page, Paged};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::outcomes::{DeliveryChange, DeliveryOutcomes, DeliveryState};
use crate::schema::{mail_attempts, mail_deliveries};

/// A row claimed for one try.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub to_address: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub body_text: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub body_html: Option<String>,
    /// Tries in this cycle, this one included.
    #[diesel(sql_type = Int4)]
    pub cycle_attempts: i32,
    #[diesel(sql_type = Int4)]
    pub attempt_no: i32,
    /// The request that enqueued the mail (logged with each try).
    #[diesel(sql_type = Nullable<Text>)]
    pub origin_request_id: Option<String>,
    /// Set when the mail delivers a notification route.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub notification_route_id: Option<Uuid>,
}

const CLAIM: &str = "
WITH due AS (
    SELECT id FROM mail_deliveries
    WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE mail_deliveries d
    SET next_attempt_at = now() + make_interval(secs => $2),
        cycle_attempts = d.cycle_attempts + 1,
        updated_at = now()
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.kind, d.to_address, d.subject, d.body_text, d.body_html, d.cycle_attempts,
              d.origin_request_id, d.notification_route_id
), interrupted AS (
    -- An array, not a join: joined, the planner scans the whole attempt
    -- history for each claim; this looks the claimed rows up by key.
    UPDATE mail_attempts a
    SET finished_at = now(), outcome = 'failed',
        error = 'interrupted: the worker stopped before recording an outcome'
    WHERE a.delivery_id = ANY (ARRAY(SELECT id FROM claimed)) AND a.outcome IS NULL
), opened AS (
    INSERT INTO mail_attempts (delivery_id, attempt_no, started_at)
    SELECT c.id,
           COALESCE((SELECT max(a.attempt_no) FROM mail_attempts a WHERE a.delivery_id = c.id), 0) + 1,
           now()
    FROM claimed c
    RETURNING delivery_id, attempt_no
)
SELECT c.*, o.attempt_no FROM claimed c JOIN opened o ON o.delivery_id = c.id";

/// Claims up to `limit` due rows for one try each, leased for `lease`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    limit: usize,
    lease: std::time::Duration,
) -> QueryResult<Vec<Claimed>> {
    galaxy_db::sql(CLAIM)
        .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind::<Double, _>(lease.as_secs_f64())
        .load(conn)
        .await
}

/// The result of one try, to be written.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: Uuid,
    pub attempt_no: i32,
    /// The delivery belongs to a notification route (its owner is told).
    pub routed: bool,
    pub finished_at: DateTime<Utc>,
    /// `None` = sent.
    pub failure: Option<OutcomeFailure>,
}

#[derive(Debug, Clone)]
pub struct OutcomeFailure {
    pub smtp_code: Option<i32>,
    pub error: String,
    pub permanent: bool,
    /// Backoff before the next try if the row stays in its cycle.
    pub retry_in: std::time::Duration,
}

const RECORD: &str = "
WITH o AS (
    SELECT * FROM unnest($1::uuid[], $2::int4[], $3::timestamptz[], $4::text[],
                         $5::int4[], $6::text[], $7::bool[], $8::int8[])
        AS t(id, attempt_no, finished_at, outcome, smtp_code, error, permanent, retry_ms)
), a AS (
    UPDATE mail_attempts m
    SET finished_at = o.finished_at, outcome = o.outcome, smtp_code = o.smtp_code, error = o.error
    FROM o WHERE m.delivery_id = o.id AND m.attempt_no = o.attempt_no AND m.outcome IS NULL
    -- The outcomes whose attempt was open, carried on: joining `o` and `a`
    -- again costs a comparison per pair, which grows with the window.
    RETURNING o.*
)
UPDATE mail_deliveries d
SET status = CASE
        WHEN a.outcome = 'sent' THEN 'sent'
        WHEN a.permanent OR d.cycle_attempts >= $9 THEN 'dead_lettered'
        ELSE 'retrying' END,
    next_attempt_at = CASE
        WHEN a.outcome = 'sent' THEN a.finished_at
        WHEN a.outcome = 'failed' AND NOT a.permanent AND d.cycle_attempts < $9
        THEN a.finished_at + a.retry_ms * interval '1 millisecond'
        ELSE d.next_attempt_at END,
    last_error = CASE WHEN a.outcome = 'sent' THEN d.last_error ELSE a.error END,
    sent_at = CASE WHEN a.outcome = 'sent' THEN a.finished_at ELSE d.sent_at END,
    updated_at = now()
FROM a
WHERE d.id = a.id AND d.status IN ('pending', 'retrying')
RETURNING d.id, d.status, d.last_error, d.notification_route_id";

/// A delivery as `RECORD` left it.
#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    notification_route_id: Option<Uuid>,
}

/// Writes outcomes in one statement. A row's status follows from its
/// outcome and its `cycle_attempts` as stored now (a resend during the try
/// reset it), so the dead-letter decision cannot act on a stale count.
///
/// Only the current try writes: the delivery is updated only where the
/// outcome's own attempt was still open. A try whose lease ran out was
/// closed as `interrupted` by the claim that superseded it, so its late
/// outcome changes neither its attempt nor the delivery (a worker sending
/// it now keeps its lease).
///
/// The new states of deliveries that belong to a notification route are
/// handed to `port` in the same transaction; if it fails, nothing is
/// written (the tries stay open and are closed as `interrupted` by the
/// claim after their lease).
pub async fn record(
    conn: &mut AsyncPgConnection,
    outcomes: &[Outcome],
    max_attempts: u32,
    port: &dyn DeliveryOutcomes,
) -> QueryResult<usize> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut nos = Vec::with_capacity(outcomes.len());
    let mut finished = Vec::with_capacity(outcomes.len());
    let mut kinds = Vec::with_capacity(outcomes.len());
    let mut codes: Vec<Option<i32>> = Vec::with_capacity(outcomes.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(outcomes.len());
    let mut permanent = Vec::with_capacity(outcomes.len());
    let mut retry_ms = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        ids.push(o.id);
        nos.push(o.attempt_no);
        finished.push(o.finished_at);
        match &o.failure {
            None => {
                kinds.push("sent".to_owned());
                codes.push(Some(250));
                errors.push(None);
                permanent.push(false);
                retry_ms.push(0i64);
            }
            Some(f) => {
                kinds.push("failed".to_owned());
                codes.push(f.smtp_code);
                errors.push(Some(f.error.clone()));
                permanent.push(f.permanent);
                retry_ms.push(i64::try_from(f.retry_in.as_millis()).unwrap_or(i64::MAX));
            }
        }
    }
    let query = diesel::sql_query(RECORD)
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<Int4>, _>(nos)
        .bind::<Array<Timestamptz>, _>(finished)
        .bind::<Array<Text>, _>(kinds)
        .bind::<Array<Nullable<Int4>>, _>(codes)
        .bind::<Array<Nullable<Text>>, _>(errors)
        .bind::<Array<diesel::sql_types::Bool>, _>(permanent)
        .bind::<Array<BigInt>, _>(retry_ms)
        .bind::<Int4, _>(i32::try_from(max_attempts).unwrap_or(i32::MAX));
    // One statement is atomic by itself: a transaction is opened only when
    // the owner of a routed delivery must be told in it (two round trips
    // fewer for the mails that belong to no route, sign-in codes among them).
    if !outcomes.iter().any(|o| o.routed) {
        return Ok(query.load::<Recorded>(conn).await?.len());
    }
    conn.transaction(async |c| {
        let rows: Vec<Recorded> = query.load(c).await?;
        let changes: Vec<DeliveryChange> = rows
            .iter()
            .filter_map(|r| {
                let state = match r.status.as_str() {
                    "sent" => DeliveryState::Sent,
                    "dead_lettered" => DeliveryState::DeadLettered,
                    _ => DeliveryState::Retrying,
                };
                Some(DeliveryChange {
                    delivery_id: r.id,
                    notification_route_id: r.notification_route_id?,
                    state,
                    last_error: r.last_error.clone(),
                })
            })
            .collect();
        if !changes.is_empty() {
            port.record(c, &changes).await?;
        }
        Ok(rows.len())
    })
    .await
}

const RELEASE: &str = "
WITH r AS (
    DELETE FROM mail_attempts a
    USING unnest($1::uuid[], $2::int4[]) AS t(id, attempt_no)
    WHERE a.delivery_id = t.id AND a.attempt_no = t.attempt_no AND a.outcome IS NULL
    RETURNING a.delivery_id
)
UPDATE mail_deliveries d
SET next_attempt_at = now(), cycle_attempts = greatest(d.cycle_attempts - 1, 0), updated_at = now()
FROM r WHERE d.id = r.delivery_id AND d.status IN ('pending', 'retrying')";

/// Hands claimed-but-untried rows back at once (shutdown, lease running out).
pub async fn release(conn: &mut AsyncPgConnection, rows: &[Claimed]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|c| c.id).collect();
    let nos: Vec<i32> = rows.iter().map(|c| c.attempt_no).collect();
    diesel::sql_query(RELEASE)
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<Int4>, _>(nos)
        .execute(conn)
        .await
}

/// A delivery as operators see it. Subject and body are left out on
/// purpose: they can carry one-time sign-in codes.
#[derive(Debug, Clone, Serialize, ToSchema, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = mail_deliveries)]
pub struct Delivery {
    pub id: Uuid,
    /// Template kind, e.g. `auth.login_code`.
    pub kind: String,
    pub to_address: String,
    /// `pending`, `retrying`, `sent` or `dead_lettered`.
    pub status: String,
    /// Tries in the current cycle (reset by resend).
    pub cycle_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub notification_route_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// One try to deliver a mail.
#[derive(Debug, Clone, Serialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = mail_attempts)]
pub struct Attempt {
    pub delivery_id: Uuid,
    /// 1, 2, … across the whole history of the delivery (resends continue).
    pub attempt_no: i32,
    pub started_at: DateTime<Utc>,
    /// Null while the try is in progress.
    pub finished_at: Option<DateTime<Utc>>,
    /// `sent`, `failed`, or null while in progress.
    pub outcome: Option<String>,
    pub smtp_code: Option<i32>,
    pub error: Option<String>,
}

/// One page of deliveries, newest first, and their total; `status` filters
/// (the dead-letter view).
pub async fn list(
    conn: &mut AsyncPgConnection,
    status: Option<&str>,
    page: Page,
) -> QueryResult<Paged<Delivery>> {
    use mail_deliveries::dsl as d;
    let mut q = d::mail_deliveries
        .select(Delivery::as_select())
        .order((d::created_at.desc(), d::id.desc()))
        .offset(page.offset())
        .limit(page.limit())
        .into_boxed();
    let mut c = d::mail_deliveries.count().into_boxed();
    if let Some(s) = status {
        q = q.filter(d::status.eq(s.to_owned()));
        c = c.filter(d::status.eq(s.to_owned()));
    }
    let items = q.load(conn).await?;
    let total = c.get_result(conn).await?;
    Ok(Paged::new(items, page, total))
}

pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Delivery>> {
    mail_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
        .await
        .optional()
}

galaxy_db::page_of_children!(
    /// One page of a delivery's attempts, newest first, and their total.
    pub fn attempts: mail_attempts by delivery_id as Attempt,
    order by mail_attempts::attempt_no.desc()
);

pub enum ResendResult {
    Rearmed(Delivery),
    AlreadySent,
    /// A mail whose secret expired (or was scrubbed): nothing left to send.
    Expired,
    NotFound,
}

const RESEND: &str = "
UPDATE mail_deliveries d
SET status = 'pending', cycle_attempts = 0, updated_at = now(),
    next_attempt_at = CASE
        WHEN EXISTS (SELECT 1 FROM mail_attempts a WHERE a.delivery_id = d.id AND a.outcome IS NULL)
        THEN d.next_attempt_at
        ELSE now() END
WHERE d.id = $1 AND d.status IN ('pending', 'retrying', 'dead_lettered')
  AND d.scrubbed_at IS NULL AND (d.secret_until IS NULL OR d.secret_until > now())
RETURNING d.id, d.kind, d.to_address, d.status, d.cycle_attempts, d.next_attempt_at,
          d.last_error, d.notification_route_id, d.created_at, d.updated_at, d.sent_at";

/// Re-arms a delivery for a fresh cycle. A row that is being tried right
/// now (an open attempt) keeps its lease, so the running try and a new one
/// cannot overlap; it is picked up as soon as that try ends or expires.
///
/// The re-arm is one statement gated on the state (status and open
/// attempt), run after the row is locked: a claim holds that lock until it
/// commits its open attempt, so the statement — taking its snapshot after
/// the lock — always sees the attempt of a claim it raced (checking first
/// and updating after, a claim committed in between had its lease cut short
/// and a second worker sent the mail again).
///
/// A re-armed delivery that belongs to a notification route is reported to
/// `port` (as [`DeliveryState::Rearmed`]) in the same transaction.
pub async fn resend(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    port: &dyn DeliveryOutcomes,
) -> QueryResult<ResendResult> {
    let updated = conn
        .transaction(async |c| {
            galaxy_db::sql("SELECT 1 FROM mail_deliveries WHERE id = $1 FOR UPDATE")
                .bind::<SqlUuid, _>(id)
                .execute(c)
                .await?;
            let row = galaxy_db::sql(RESEND)
                .bind::<SqlUuid, _>(id)
                .get_result::<Delivery>(c)
                .await
                .optional()?;
            if let Some(route) = row.as_ref().and_then(|r| r.notification_route_id) {
                let change = DeliveryChange {
                    delivery_id: id,
                    notification_route_id: route,
                    state: DeliveryState::Rearmed,
                    last_error: row.as_ref().and_then(|r| r.last_error.clone()),
                };
                port.record(c, std::slice::from_ref(&change)).await?;
            }
            Ok::<_, diesel::result::Error>(row)
        })
        .await?;
    if let Some(row) = updated {
        return Ok(ResendResult::Rearmed(row));
    }
    Ok(match get(conn, id).await? {
        Some(r) if r.status == "sent" => ResendResult::AlreadySent,
        Some(_) => ResendResult::Expired,
        None => ResendResult::NotFound,
    })
}

/// Deliveries per status (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub pending: i64,
    pub retrying: i64,
    pub sent: i64,
    pub dead_lettered: i64,
}

/// One `GROUP BY status` over the outbox.
pub async fn status_counts(conn: &mut AsyncPgConnection) -> QueryResult<StatusCounts> {
    use mail_deliveries::dsl as d;
    let rows: Vec<(String, i64)> = d::mail_deliveries
        .group_by(d::status)
        .select((d::status, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    let mut c = StatusCounts::default();
    for (status, n) in rows {
        match status.as_str() {
            "pending" => c.pending = n,
            "retrying" => c.retrying = n,
            "sent" => c.sent = n,
            "dead_lettered" => c.dead_lettered = n,
            _ => {}
        }
    }
    Ok(c)
}
