//! The outcome port: how the owner of a delivery (today the notification
//! module, for email routes) learns what became of its mail.
//!
//! The outbox calls [`DeliveryOutcomes::record`] on the connection, and
//! inside the transaction, that writes a delivery's new state — a try's
//! outcome (`retrying`, `sent`, `dead_lettered`) or a resend (`pending`
//! again). The implementation writes its own rows on that connection, so
//! they commit or roll back with the delivery: the two can never disagree,
//! even if the process dies in between. Only deliveries enqueued with a
//! `notification_route_id` are reported.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

/// The state a delivery was just moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// A try failed transiently; another one is scheduled.
    Retrying,
    /// The relay accepted the mail (final).
    Sent,
    /// No more tries: a permanent rejection or the cycle's maximum (final
    /// until a resend).
    DeadLettered,
    /// An operator re-armed it (`pending`, a fresh cycle).
    Rearmed,
}

/// One delivery's change, as written by the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryChange {
    pub delivery_id: Uuid,
    /// The route the mail was enqueued for ([`crate::NewMail::notification_route_id`]).
    pub notification_route_id: Uuid,
    pub state: DeliveryState,
    /// The delivery's `last_error` after the change (the failed try's
    /// error for `Retrying`/`DeadLettered`).
    pub last_error: Option<String>,
}

/// Called inside the transaction that records delivery states; an error
/// rolls that transaction back (the delivery keeps its previous state and
/// the try is retried once its lease ends).
#[async_trait::async_trait]
pub trait DeliveryOutcomes: Send + Sync + 'static {
    async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        changes: &[DeliveryChange],
    ) -> QueryResult<()>;
}

/// Reports to nobody (an outbox whose mails belong to no route).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOutcomes;

#[async_trait::async_trait]
impl DeliveryOutcomes for NoOutcomes {
    async fn record(&self, _: &mut AsyncPgConnection, _: &[DeliveryChange]) -> QueryResult<()> {
        Ok(())
    }
}
