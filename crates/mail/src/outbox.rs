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
}

/// Inserts `mail` as a `pending` delivery, due now, on the caller's
/// connection — call it inside the caller's transaction so the mail and the
/// write that caused it commit or roll back together. Returns the delivery id.
pub async fn enqueue(conn: &mut AsyncPgConnection, mail: &NewMail) -> QueryResult<Uuid> {
    let id = galaxy_core::new_id();
    diesel::insert_into(mail_deliveries::table)
        .values(NewDeliveryRow {
            id,
            kind: &mail.kind,
            to_address: &mail.to,
            subject: &mail.subject,
            body_text: &mail.body_text,
            body_html: mail.body_html.as_deref(),
            notification_route_id: mail.notification_route_id,
        })
        .execute(conn)
        .await?;
    Ok(id)
}
