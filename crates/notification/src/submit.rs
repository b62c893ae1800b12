//! The write side of submit, in two steps: an intent becomes rows
//! ([`prepare`]: validation and the recipients' addresses from the cache, no
//! I/O, in the caller's task) and the rows are written ([`write`]: two
//! statements on the caller's connection, inside its transaction).

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::Value;
use uuid::Uuid;

use crate::catalog::{self, Audience, Intent};
use crate::error::NotificationError;
use crate::model::{NotificationSettings, PendingPush, RecipientDirectory, Submitted, event};
use crate::proto::PushEvent;
use crate::store::{self, CHANNEL_EMAIL, CHANNEL_PUSH, NewIntent, NewRoute};

/// An intent turned into the rows it writes and the events it pushes.
pub(crate) struct Prepared {
    intent_id: Uuid,
    kind: &'static str,
    idempotency_key: String,
    payload: Value,
    created_at: DateTime<Utc>,
    origin_request_id: Option<String>,
    routes: Vec<NewRoute>,
    /// The delivery ids the email routes point at, `mail_ids[i]` for `mails[i]`.
    mail_ids: Vec<Uuid>,
    mails: Vec<galaxy_mail::NewMail>,
    events: Vec<PushEvent>,
}

impl Prepared {
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// What the caller gets once the rows are committed: the push events
    /// only if this intent was the one written.
    pub(crate) fn into_pending(self, submitted: Submitted) -> PendingPush {
        let events = if submitted.created {
            self.events
        } else {
            Vec::new()
        };
        PendingPush { submitted, events }
    }
}

/// Validates `intent` and builds its rows: per player recipient a push route
/// (reserved for the submitter for one lease) and an email route handed to
/// the mail outbox (or `skipped` without an address); for an admin kind one
/// email route to the admin address, `skipped` when none is configured.
pub(crate) fn prepare(
    intent: Intent,
    directory: &dyn RecipientDirectory,
    settings: &NotificationSettings,
) -> Result<Prepared, NotificationError> {
    let (spec, recipients) = catalog::validate(&intent)?;
    let now = Utc::now();
    let intent_id = galaxy_core::new_id();
    // The submitter pushes after commit; only if it never does (crash) does
    // the worker step in, once the lease is over.
    let reserved_until =
        now + chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(30));
    let origin_request_id = galaxy_core::current_request_id();
    let mut routes = Vec::with_capacity(recipients.len() * 2 + 1);
    let mut events = Vec::new();
    let mut addressed: Vec<(Uuid, Uuid, String)> = Vec::new();
    // An email route with an address hands over to its mail (same
    // transaction) and then follows it: the outbox reports every state it
    // writes (`RoutesFollowMail`).
    let mut email_route = |account_id: Option<Uuid>, address: Option<String>, skip| {
        let id = galaxy_core::new_id();
        let mail_delivery_id = address.as_ref().map(|to| {
            let mail_id = galaxy_core::new_id();
            addressed.push((mail_id, id, to.clone()));
            mail_id
        });
        NewRoute {
            id,
            channel: CHANNEL_EMAIL,
            account_id,
            status: if address.is_some() {
                "pending"
            } else {
                "skipped"
            },
            attempts: 0,
            skip_reason: address.is_none().then_some(skip),
            address,
            next_attempt_at: now,
            mail_delivery_id,
        }
    };
    match spec.audience {
        Audience::Players => {
            let payload_json = intent.payload.to_string();
            for account_id in &recipients {
                let id = galaxy_core::new_id();
                routes.push(NewRoute {
                    id,
                    channel: CHANNEL_PUSH,
                    account_id: Some(*account_id),
                    address: None,
                    status: "pending",
                    attempts: 0,
                    next_attempt_at: reserved_until,
                    skip_reason: None,
                    mail_delivery_id: None,
                });
                events.push(event(
                    intent_id,
                    id,
                    *account_id,
                    spec.kind,
                    payload_json.clone(),
                    now,
                ));
                let address = directory.email(*account_id);
                routes.push(email_route(Some(*account_id), address, "no_email_address"));
            }
        }
        Audience::Admin => {
            let address = settings.admin_email.clone();
            if address.is_none() {
                tracing::warn!(
                    kind = spec.kind,
                    intent_id = %intent_id,
                    "admin notification not mailed: BACKEND_NOTIFICATION_ADMIN_EMAIL is empty; route skipped"
                );
            }
            routes.push(email_route(None, address, "admin_email_not_configured"));
        }
    }
    let (mail_ids, mails) = if addressed.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let (subject, body_text) = catalog::render_mail(spec.kind, &intent.payload);
        addressed
            .into_iter()
            .map(|(mail_id, route_id, to)| {
                let mail = galaxy_mail::NewMail {
                    kind: spec.kind.to_owned(),
                    to,
                    subject: subject.clone(),
                    body_text: body_text.clone(),
                    body_html: None,
                    notification_route_id: Some(route_id),
                    origin_request_id: origin_request_id.clone(),
                    secret_until: None,
                };
                (mail_id, mail)
            })
            .unzip()
    };
    Ok(Prepared {
        intent_id,
        kind: spec.kind,
        idempotency_key: intent.idempotency_key,
        payload: intent.payload,
        created_at: now,
        origin_request_id,
        routes,
        mail_ids,
        mails,
        events,
    })
}

/// Writes `prepared` on `conn` (the caller owns the transaction): the
/// intent and its routes in one statement, its mails in one more. If
/// (kind, idempotency key) exists nothing is written and the first intent's
/// id comes back with `created: false`.
pub(crate) async fn write(
    conn: &mut AsyncPgConnection,
    prepared: &Prepared,
) -> Result<Submitted, NotificationError> {
    let intent = NewIntent {
        id: prepared.intent_id,
        kind: prepared.kind,
        idempotency_key: &prepared.idempotency_key,
        payload: &prepared.payload,
        created_at: prepared.created_at,
        origin_request_id: prepared.origin_request_id.as_deref(),
    };
    if !store::insert_intent_with_routes(conn, &intent, &prepared.routes).await? {
        let first = store::intent_id_by_key(conn, prepared.kind, &prepared.idempotency_key).await?;
        return Ok(Submitted {
            intent_id: first,
            created: false,
        });
    }
    // The routes already point at these delivery ids.
    galaxy_mail::enqueue_many_as(conn, &prepared.mail_ids, &prepared.mails).await?;
    Ok(Submitted {
        intent_id: prepared.intent_id,
        created: true,
    })
}
