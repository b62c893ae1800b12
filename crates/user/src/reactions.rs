//! The durable record of what an account change owes the listeners
//! (decision HARD-15): a row written in the change's own transaction,
//! deleted once every listener succeeded. Worked on under its row lock, so
//! a process that dies mid-way releases it at once and the next pass (of
//! any backend) runs the listeners again; they are idempotent, so each
//! reaction takes effect exactly once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_queue::Backoff;
use uuid::Uuid;

use crate::events::UserEvents;
use crate::model::AccountStatus;
use crate::schema::account_reactions as ar;

/// Delay after a failed try: the worker's interval, doubling up to 5 minutes.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_secs(5), Duration::from_secs(300))
}

/// One change whose reactions are not all done.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ar, check_for_backend(diesel::pg::Pg))]
pub(crate) struct Pending {
    pub id: Uuid,
    pub account_id: Uuid,
    pub status: String,
    pub changed_at: DateTime<Utc>,
    pub attempts: i32,
}

/// Whether a change to `status` owes the listeners anything.
pub(crate) fn reacts(status: AccountStatus) -> bool {
    matches!(status, AccountStatus::Blocked | AccountStatus::Deleted)
}

/// Records a change's reactions; call inside the change's transaction.
pub(crate) async fn record(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    status: AccountStatus,
    changed_at: DateTime<Utc>,
) -> QueryResult<Uuid> {
    diesel::insert_into(ar::table)
        .values((
            ar::id.eq(galaxy_core::new_id()),
            ar::account_id.eq(account_id),
            ar::status.eq(status.as_str()),
            ar::changed_at.eq(changed_at),
        ))
        .returning(ar::id)
        .get_result(conn)
        .await
}

/// Locks one record until the transaction ends, waiting for a worker that
/// holds it; `None` once someone completed it.
pub(crate) async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Pending>> {
    ar::table
        .find(id)
        .for_update()
        .select(Pending::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks the oldest due record nobody is working on.
pub(crate) async fn claim_due(conn: &mut AsyncPgConnection) -> QueryResult<Option<Pending>> {
    ar::table
        .filter(ar::next_attempt_at.le(diesel::dsl::now))
        .order(ar::next_attempt_at)
        .limit(1)
        .for_update()
        .skip_locked()
        .select(Pending::as_select())
        .first(conn)
        .await
        .optional()
}

/// Runs every listener for the locked record `p` (all of them, even after
/// one failed: each is idempotent), then deletes the record, or keeps it
/// for a later try with the first error.
pub(crate) async fn complete(
    conn: &mut AsyncPgConnection,
    listeners: &[Arc<dyn UserEvents>],
    p: &Pending,
) -> QueryResult<bool> {
    let mut failure = None;
    for l in listeners {
        let outcome = match AccountStatus::parse(&p.status) {
            Some(AccountStatus::Deleted) => l.user_deleted(p.account_id).await,
            Some(AccountStatus::Blocked) => l.user_blocked(p.account_id, p.changed_at).await,
            // The CHECK constraint admits only the two.
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            failure.get_or_insert(e.to_string());
        }
    }
    let Some(error) = failure else {
        diesel::delete(ar::table.find(p.id)).execute(conn).await?;
        return Ok(true);
    };
    let attempts = p.attempts.saturating_add(1);
    let delay = backoff().delay(u32::try_from(attempts).unwrap_or(u32::MAX));
    let retry_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    tracing::warn!(account_id = %p.account_id, status = %p.status, attempts, %error,
        "account reactions failed; retried later");
    diesel::update(ar::table.find(p.id))
        .set((
            ar::attempts.eq(attempts),
            ar::next_attempt_at.eq(retry_at),
            ar::last_error.eq(error.chars().take(2000).collect::<String>()),
        ))
        .execute(conn)
        .await?;
    Ok(false)
}
