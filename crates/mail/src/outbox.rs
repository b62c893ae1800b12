use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_db::column;
use uuid::Uuid;

/// A rendered mail ready for the outbox (the templates module renders it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMail {
    /// The template kind, e.g. `auth.login_code`.
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// Set when the mail delivers a notification route.
    pub notification_route_id: Option<Uuid>,
    /// The request that caused the mail, for the worker's log lines; `None`
    /// takes the request the enqueuing task serves (if any).
    pub origin_request_id: Option<String>,
    /// When the mail carries a secret (a sign-in code): the moment it stops
    /// working. Subject and bodies are scrubbed once the mail is sent, or
    /// once this passes for a dead letter (see `retention`).
    pub secret_until: Option<DateTime<Utc>>,
}

/// Inserts `mail` as a `pending` delivery, due now, on the caller's
/// connection — call it inside the caller's transaction so the mail and the
/// write that caused it commit or roll back together. Returns the delivery id.
pub async fn enqueue(conn: &mut AsyncPgConnection, mail: &NewMail) -> QueryResult<Uuid> {
    let mut ids = enqueue_many(conn, std::slice::from_ref(mail)).await?;
    Ok(ids.remove(0))
}

/// [`enqueue`] for several mails in one INSERT (one round trip),
/// for callers that fan out (a notification to every member of a game).
/// Returns the delivery ids in the order of `mails`.
pub async fn enqueue_many(
    conn: &mut AsyncPgConnection,
    mails: &[NewMail],
) -> QueryResult<Vec<Uuid>> {
    let ids: Vec<Uuid> = mails.iter().map(|_| galaxy_core::new_id()).collect();
    enqueue_many_as(conn, &ids, mails).await?;
    Ok(ids)
}

/// [`enqueue_many`] with delivery ids the caller chose (`ids[i]` for
/// `mails[i]`), for a caller that must write them into its own rows before
/// the mails exist (a notification route points at its mail delivery).
pub async fn enqueue_many_as(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    mails: &[NewMail],
) -> QueryResult<()> {
    assert_eq!(ids.len(), mails.len(), "one delivery id per mail");
    if mails.is_empty() {
        return Ok(());
    }
    let current = galaxy_core::current_request_id();
    // Arrays rather than a multi-row VALUES list: one text for any count,
    // planned per execution since the best plan depends on it (PERF-1).
    diesel::sql_query(
        "INSERT INTO mail_deliveries (id, kind, to_address, subject, body_text, body_html, \
                                      notification_route_id, origin_request_id, secret_until) \
         SELECT m.id, m.kind, m.to_address, m.subject, m.body_text, m.body_html, \
                m.notification_route_id, COALESCE(m.origin_request_id, $10), m.secret_until \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::uuid[], $8::text[], $9::timestamptz[]) \
              AS m(id, kind, to_address, subject, body_text, body_html, notification_route_id, \
                   origin_request_id, secret_until)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Text>, _>(column(mails, |m| m.kind.as_str()))
    .bind::<Array<Text>, _>(column(mails, |m| m.to.as_str()))
    .bind::<Array<Text>, _>(column(mails, |m| m.subject.as_str()))
    .bind::<Array<Text>, _>(column(mails, |m| m.body_text.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(mails, |m| m.body_html.as_deref()))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(mails, |m| m.notification_route_id))
    .bind::<Array<Nullable<Text>>, _>(column(mails, |m| m.origin_request_id.as_deref()))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(mails, |m| m.secret_until))
    .bind::<Nullable<Text>, _>(current.as_deref())
    .execute(conn)
    .await
    .map(drop)
}
