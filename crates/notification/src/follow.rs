//! Email routes follow their mail: the notification side of the mail
//! outbox's outcome port ([`galaxy_mail::DeliveryOutcomes`]).

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use galaxy_mail::{DeliveryChange, DeliveryOutcomes};

use crate::store;

/// Updates the email route of each reported delivery on the outbox's
/// connection, inside the transaction that wrote the delivery's state — so
/// a route never says `delivered` for a mail that was not sent, nor stays
/// `pending` for one that was, even across a crash. The binary hands it to
/// the mail worker and the mail service (`with_outcomes`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoutesFollowMail;

#[async_trait::async_trait]
impl DeliveryOutcomes for RoutesFollowMail {
    async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        changes: &[DeliveryChange],
    ) -> QueryResult<()> {
        store::follow_mail(conn, changes).await.map(drop)
    }
}
