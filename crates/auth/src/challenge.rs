//! Database functions over `auth_challenges`, including the code-request
//! rate limits (counted from the table itself, see `insert_within_limits`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_core::env::RateLimit;
use uuid::Uuid;

use crate::schema::auth_challenges;

/// Serialises code requests for an email and, when the request has one, its
/// address until the transaction ends, so concurrent requests cannot all
/// pass the count. One statement; the email is always locked first, so two
/// requests never wait on each other in opposite orders.
pub(crate) async fn lock_keys(
    conn: &mut AsyncPgConnection,
    email_key: &str,
    ip_key: Option<&str>,
) -> QueryResult<()> {
    match ip_key {
        None => {
            galaxy_db::sql("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<Text, _>(email_key)
                .execute(conn)
                .await
        }
        Some(ip_key) => {
            galaxy_db::sql(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), \
                        pg_advisory_xact_lock(hashtextextended($2, 0))",
            )
            .bind::<Text, _>(email_key)
            .bind::<Text, _>(ip_key)
            .execute(conn)
            .await
        }
    }
    .map(drop)
}

/// `Ok(())` when another request fits in the window that holds `n`
/// requests, else the seconds until the `oldest` counted one leaves it (of
/// the `limit` newest: then a slot is free again).
fn verdict(
    n: i64,
    oldest: Option<DateTime<Utc>>,
    limit: RateLimit,
    now: DateTime<Utc>,
) -> Result<(), u64> {
    if n < i64::from(limit.count) {
        return Ok(());
    }
    let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX);
    let frees_at = oldest.unwrap_or(now) + window;
    let ms = (frees_at - now).num_milliseconds().max(0);
    Err(u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1))
}

/// What [`insert_within_limits`] saw: both windows, and so whether it wrote.
#[derive(QueryableByName)]
struct Windows {
    #[diesel(sql_type = BigInt)]
    email_n: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    email_oldest: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    ip_n: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    ip_oldest: Option<DateTime<Utc>>,
}

pub(crate) struct NewChallenge<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub code_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub source_ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The code-request limits of one request: per email, and per source
/// address when the request has one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub email: RateLimit,
    pub ip: RateLimit,
}

/// Inserts `c` if both sliding windows (its email's, its address's) have
/// room, in one statement. `Err(seconds)` when either is full: nothing was
/// written, and a slot frees in that many seconds. Only the `limit` newest
/// challenges of each are read (a backward scan of the `(email,
/// created_at)` or `(source_ip, created_at)` index), so the check costs the
/// same however many requests a window holds.
///
/// The caller holds the keys' [`lock_keys`] already: the statement's
/// snapshot, taken after the locks, sees every request counted before it.
pub(crate) async fn insert_within_limits(
    conn: &mut AsyncPgConnection,
    c: &NewChallenge<'_>,
    limits: Limits,
) -> QueryResult<Result<(), u64>> {
    let since = |limit: RateLimit| {
        c.created_at - chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX)
    };
    let w: Windows = galaxy_db::sql(
        "WITH by_email AS ( \
             SELECT count(*) AS n, min(created_at) AS oldest FROM ( \
                 SELECT created_at FROM auth_challenges \
                 WHERE email = $2 AND created_at > $7 \
                 ORDER BY created_at DESC LIMIT $8) newest), \
         by_ip AS ( \
             SELECT count(*) AS n, min(created_at) AS oldest FROM ( \
                 SELECT created_at FROM auth_challenges \
                 WHERE source_ip = $5::inet AND created_at > $9 \
                 ORDER BY created_at DESC LIMIT $10) newest), \
         written AS ( \
             INSERT INTO auth_challenges \
                 (id, email, code_hash, attempts, expires_at, source_ip, created_at) \
             SELECT $1, $2, $3, 0, $4, $5::inet, $6 \
             WHERE (SELECT n FROM by_email) < $8 AND (SELECT n FROM by_ip) < $10) \
         SELECT e.n AS email_n, e.oldest AS email_oldest, i.n AS ip_n, i.oldest AS ip_oldest \
         FROM by_email e, by_ip i",
    )
    .bind::<SqlUuid, _>(c.id)
    .bind::<Text, _>(c.email)
    .bind::<Text, _>(c.code_hash)
    .bind::<Timestamptz, _>(c.expires_at)
    .bind::<Nullable<Text>, _>(c.source_ip.as_deref())
    .bind::<Timestamptz, _>(c.created_at)
    .bind::<Timestamptz, _>(since(limits.email))
    .bind::<BigInt, _>(i64::from(limits.email.count))
    .bind::<Timestamptz, _>(since(limits.ip))
    .bind::<BigInt, _>(i64::from(limits.ip.count))
    .get_result(conn)
    .await?;
    let by_email = verdict(w.email_n, w.email_oldest, limits.email, c.created_at);
    let by_ip = verdict(w.ip_n, w.ip_oldest, limits.ip, c.created_at);
    Ok(match (by_email, by_ip) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(a), Err(b)) => Err(a.max(b)),
        (Err(secs), Ok(())) | (Ok(()), Err(secs)) => Err(secs),
    })
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = auth_challenges)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub(crate) struct ChallengeRow {
    pub id: Uuid,
    pub email: String,
    pub code_hash: String,
    pub attempts: i32,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// The challenge, locked for the rest of the transaction so concurrent
/// verifies of one challenge are serialised (no double use, exact attempts).
pub(crate) async fn lock(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<ChallengeRow>> {
    auth_challenges::table
        .find(id)
        .select(ChallengeRow::as_select())
        .for_update()
        .get_result(conn)
        .await
        .optional()
}

pub(crate) async fn count_wrong_attempt(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(auth_challenges::table.find(id))
        .set(auth_challenges::attempts.eq(auth_challenges::attempts + 1))
        .execute(conn)
        .await
        .map(drop)
}

pub(crate) async fn consume(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(auth_challenges::table.find(id))
        .set(auth_challenges::consumed_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}
