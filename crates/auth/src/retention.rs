//! Expired sign-in data is not kept: challenges and sessions past their
//! retention are deleted on a schedule ([`crate::PgAuthService::spawn_pruner`]).
//!
//! A challenge goes once it expired more than `BACKEND_AUTH_CHALLENGE_RETENTION`
//! ago — never while it still counts against a code-request limit window.
//! A session goes once it expired or was revoked more than
//! `BACKEND_AUTH_SESSION_RETENTION` ago (until then an operator still sees
//! it). Deleted in chunks so a backlog never holds long locks.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Rows deleted per statement.
pub const PRUNE_CHUNK: i64 = 1000;

/// Deletes up to [`PRUNE_CHUNK`] challenges that expired and were created
/// before `cutoff`.
pub async fn prune_challenges(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<usize> {
    let gone = "expires_at < $1 AND created_at < $1";
    prune(conn, "auth_challenges", gone, cutoff).await
}

/// Deletes up to [`PRUNE_CHUNK`] sessions that expired or were revoked
/// before `cutoff`.
pub async fn prune_sessions(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<usize> {
    let gone = "expires_at < $1 OR revoked_at < $1";
    prune(conn, "auth_sessions", gone, cutoff).await
}

/// Deletes up to [`PRUNE_CHUNK`] rows of `table` that `gone` (a condition
/// on `cutoff`, its `$1`) selects.
async fn prune(
    conn: &mut AsyncPgConnection,
    table: &'static str,
    gone: &'static str,
    cutoff: DateTime<Utc>,
) -> QueryResult<usize> {
    galaxy_db::sql(format!(
        "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {gone} LIMIT $2)"
    ))
    .bind::<Timestamptz, _>(cutoff)
    .bind::<BigInt, _>(PRUNE_CHUNK)
    .execute(conn)
    .await
}
