//! Mails that carry a live secret (a sign-in code) do not keep it.
//!
//! The enqueuer sets [`crate::NewMail::secret_until`] to the moment the
//! secret stops working (the mail module knows nothing of sign-in). Each
//! worker batch first scrubs subject and bodies of such mails once they are
//! sent, and of dead letters once `secret_until` has passed — until then an
//! operator can still resend them; a scrubbed mail cannot be resent
//! (`409 expired`). Rows being resent or sent right now are skipped (`SKIP
//! LOCKED`) and scrubbed by a later batch.

use diesel::QueryResult;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// What replaces the subject and text body of a scrubbed mail.
pub const SCRUBBED: &str = "[removed: this mail carried a sign-in code]";

/// Rows scrubbed per statement; a backlog drains over the next batches.
const SCRUB_BATCH: i64 = 500;

/// Scrubs what is due; returns how many rows.
pub async fn scrub(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let n = galaxy_db::sql(
        "UPDATE mail_deliveries d \
         SET subject = $1, body_text = $1, body_html = NULL, scrubbed_at = now(), \
             updated_at = now() \
         WHERE d.id IN (SELECT id FROM mail_deliveries \
                        WHERE secret_until IS NOT NULL AND scrubbed_at IS NULL \
                          AND (status = 'sent' \
                               OR (status = 'dead_lettered' AND secret_until <= now())) \
                        LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Text, _>(SCRUBBED)
    .bind::<BigInt, _>(SCRUB_BATCH)
    .execute(conn)
    .await?;
    if n > 0 {
        tracing::info!(scrubbed = n, "mail secrets removed");
    }
    Ok(n)
}
