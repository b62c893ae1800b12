//! Database code for `user_country_counters` (owned by this crate).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::schema::user_country_counters;

/// How often one account was seen from one country.
#[derive(Serialize, utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = user_country_counters, check_for_backend(diesel::pg::Pg))]
pub struct CountryCounter {
    /// ISO 3166-1 alpha-2, upper case.
    #[schema(example = "GB")]
    pub country: String,
    pub request_count: i64,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Every country an account was seen from, most requests first.
pub async fn counters_for(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
) -> QueryResult<Vec<CountryCounter>> {
    user_country_counters::table
        .filter(user_country_counters::account_id.eq(account_id))
        .order((
            user_country_counters::request_count.desc(),
            user_country_counters::country.asc(),
        ))
        .select(CountryCounter::as_select())
        .load(conn)
        .await
}

/// One aggregated (account, country) delta waiting to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingCount {
    pub account_id: Uuid,
    pub country: String,
    pub request_count: i64,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Adds every delta in one statement: the arrays travel as five parameters,
/// whatever the batch size.
///
/// Rows are sorted by key so two backends flushing at once lock rows in the
/// same order (no deadlock). Deltas for an account id that does not exist are
/// dropped by the join instead of failing the batch on the foreign key: one
/// stray id must not hold every other account's counts back forever.
pub(crate) async fn upsert_counts(
    conn: &mut AsyncPgConnection,
    counts: &mut [PendingCount],
) -> QueryResult<usize> {
    if counts.is_empty() {
        return Ok(0);
    }
    counts.sort_by(|a, b| (a.account_id, &a.country).cmp(&(b.account_id, &b.country)));
    let ids: Vec<Uuid> = counts.iter().map(|c| c.account_id).collect();
    let countries: Vec<String> = counts.iter().map(|c| c.country.clone()).collect();
    let requests: Vec<i64> = counts.iter().map(|c| c.request_count).collect();
    let first: Vec<DateTime<Utc>> = counts.iter().map(|c| c.first_seen_at).collect();
    let last: Vec<DateTime<Utc>> = counts.iter().map(|c| c.last_seen_at).collect();
    diesel::sql_query(
        "INSERT INTO user_country_counters \
             (account_id, country, request_count, first_seen_at, last_seen_at) \
         SELECT d.account_id, d.country, d.request_count, d.first_seen_at, d.last_seen_at \
         FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::timestamptz[], $5::timestamptz[]) \
              WITH ORDINALITY AS d(account_id, country, request_count, first_seen_at, last_seen_at, n) \
         JOIN accounts a ON a.id = d.account_id \
         ORDER BY d.n \
         ON CONFLICT (account_id, country) DO UPDATE SET \
             request_count = user_country_counters.request_count + EXCLUDED.request_count, \
             first_seen_at = least(user_country_counters.first_seen_at, EXCLUDED.first_seen_at), \
             last_seen_at = greatest(user_country_counters.last_seen_at, EXCLUDED.last_seen_at)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Text>, _>(countries)
    .bind::<Array<BigInt>, _>(requests)
    .bind::<Array<Timestamptz>, _>(first)
    .bind::<Array<Timestamptz>, _>(last)
    .execute(conn)
    .await
}
