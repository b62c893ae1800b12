//! Database functions over `auth_challenges`, including the code-request
//! rate limits (counted from the table itself, see `within_limit`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_core::env::RateLimit;
use uuid::Uuid;

use crate::schema::auth_challenges;

#[derive(QueryableByName)]
struct WindowCount {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
}

/// Serialises code requests for one key (an email or an address) until the
/// transaction ends, so concurrent requests cannot all pass the count.
pub(crate) async fn lock_key(conn: &mut AsyncPgConnection, key: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(key)
        .execute(conn)
        .await
        .map(drop)
}

/// `Ok(())` when another request fits in the window, else the seconds until
/// the oldest counted request leaves it (of the `limit` newest: then a slot
/// is free again).
fn verdict(c: &WindowCount, limit: RateLimit, now: DateTime<Utc>) -> Result<(), u64> {
    if c.n < i64::from(limit.count) {
        return Ok(());
    }
    let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX);
    let frees_at = c.oldest.unwrap_or(now) + window;
    let ms = (frees_at - now).num_milliseconds().max(0);
    Err(u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1))
}

/// Whose code requests a sliding window counts.
pub(crate) enum Requester<'a> {
    Email(&'a str),
    /// An address shared by many players can have a large window.
    Ip(&'a str),
}

/// Challenges created for `who` inside the sliding window. Only the `limit`
/// newest are read (a backward scan of the `(email, created_at)` or
/// `(source_ip, created_at)` index), so the check costs the same however
/// many requests the window holds.
pub(crate) async fn window(
    conn: &mut AsyncPgConnection,
    who: Requester<'_>,
    limit: RateLimit,
    now: DateTime<Utc>,
) -> QueryResult<Result<(), u64>> {
    let (matches, key) = match who {
        Requester::Email(email) => ("email = $1", email),
        Requester::Ip(ip) => ("source_ip = $1::inet", ip),
    };
    let since = now - chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX);
    let c: WindowCount = diesel::sql_query(format!(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM ( \
           SELECT created_at FROM auth_challenges \
           WHERE {matches} AND created_at > $2 \
           ORDER BY created_at DESC LIMIT $3) newest"
    ))
    .bind::<Text, _>(key)
    .bind::<Timestamptz, _>(since)
    .bind::<BigInt, _>(i64::from(limit.count))
    .get_result(conn)
    .await?;
    Ok(verdict(&c, limit, now))
}

pub(crate) struct NewChallenge<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub code_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub source_ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn insert(conn: &mut AsyncPgConnection, c: &NewChallenge<'_>) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO auth_challenges (id, email, code_hash, attempts, expires_at, source_ip, created_at) \
         VALUES ($1, $2, $3, 0, $4, $5::inet, $6)",
    )
    .bind::<SqlUuid, _>(c.id)
    .bind::<Text, _>(c.email)
    .bind::<Text, _>(c.code_hash)
    .bind::<Timestamptz, _>(c.expires_at)
    .bind::<Nullable<Text>, _>(c.source_ip.as_deref())
    .bind::<Timestamptz, _>(c.created_at)
    .execute(conn)
    .await
    .map(drop)
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
