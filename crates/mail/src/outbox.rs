use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::mail_deliveries;

/// A rendered mail ready for the outbox (see [`crate::templates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// The template kind, e.g. `auth.login_code`.
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// Set when the mail delivers a notification route.
    pub notification_route_id: Option<Uuid>,
}

#[derive(Insertable)]
#[diesel(table_name = mail_deliveries)]
struct NewDeliveryRow<'a> {
    id: Uuid,
    kind: &'a str,
    to_address: &'a str,
    subject: &'a str,
    body_text: &'a str,
    body_html: Option<&'a str>,
    notification_route_id: Option<Uuid>,
    origin_request_id: Option<&'a str>,
}

impl NewMail {
    fn row<'a>(&'a self, id: Uuid, origin_request_id: Option<&'a str>) -> NewDeliveryRow<'a> {
        NewDeliveryRow {
            id,
            kind: &self.kind,
            to_address: &self.to,
            subject: &self.subject,
            body_text: &self.body_text,
            body_html: self.body_html.as_deref(),
            notification_route_id: self.notification_route_id,
            origin_request_id,
        }
    }
}

/// Inserts `mail` as a `pending` delivery, due now, on the caller's
/// connection — call it inside the caller's transaction so the mail and the
/// write that caused it commit or roll back together. Returns the delivery id.
pub async fn enqueue(conn: &mut AsyncPgConnection, mail: &NewMail) -> QueryResult<Uuid> {
    let mut ids = enqueue_many(conn, std::slice::from_ref(mail)).await?;
    Ok(ids.remove(0))
}

/// [`enqueue`] for several mails in one multi-row INSERT (one round trip),
/// for callers that fan out (a notification to every member of a game).
/// Returns the delivery ids in the order of `mails`.
pub async fn enqueue_many(
    conn: &mut AsyncPgConnection,
    mails: &[NewMail],
) -> QueryResult<Vec<Uuid>> {
    if mails.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = mails.iter().map(|_| galaxy_core::new_id()).collect();
    // The request that caused the mail, for the worker's log lines.
    let origin = galaxy_core::current_request_id();
    let rows: Vec<NewDeliveryRow<'_>> = mails
        .iter()
        .zip(&ids)
        .map(|(m, id)| m.row(*id, origin.as_deref()))
        .collect();
    diesel::insert_into(mail_deliveries::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(ids)
}
