//! The mail module's public face for the admin surface and metrics.

use std::sync::Arc;

use galaxy_core::{ApiError, Page, Paged};
use galaxy_db::Pool;
use uuid::Uuid;

use crate::outcomes::{DeliveryOutcomes, NoOutcomes};
use crate::store::{self, ResendResult, StatusCounts};
pub use crate::store::{Attempt, Delivery};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("no such delivery")]
    NotFound,
    #[error("the delivery was already sent")]
    AlreadySent,
    #[error("the delivery's sign-in secret has expired; its content was removed")]
    Expired,
    #[error(transparent)]
    Db(#[from] galaxy_db::DbError),
}

galaxy_db::query_error_into_db!(MailError);

impl From<MailError> for ApiError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::NotFound => ApiError::not_found("no mail delivery with this id"),
            MailError::AlreadySent => ApiError::conflict(
                "already_sent",
                "the delivery was already sent; only pending, retrying and dead-lettered deliveries can be resent",
            ),
            MailError::Expired => ApiError::conflict(
                "expired",
                "the delivery carried a sign-in secret that has expired and was removed; the user requests a new code",
            ),
            MailError::Db(e) => e.into(),
        }
    }
}

/// Inspection and resend of the outbox.
#[async_trait::async_trait]
pub trait MailService: Send + Sync + 'static {
    /// Newest first; `dead_letters_only` restricts to `dead_lettered`.
    async fn deliveries(
        &self,
        dead_letters_only: bool,
        page: Page,
    ) -> Result<Paged<Delivery>, MailError>;
    async fn delivery(&self, id: Uuid) -> Result<Delivery, MailError>;
    /// Newest first.
    async fn attempts(&self, id: Uuid, page: Page) -> Result<Paged<Attempt>, MailError>;
    /// `pending`/`retrying`/`dead_lettered` → a fresh cycle, due now.
    async fn resend(&self, id: Uuid) -> Result<Delivery, MailError>;
    async fn status_counts(&self) -> Result<StatusCounts, MailError>;
}

/// [`MailService`] over PostgreSQL.
#[derive(Clone)]
pub struct PgMailService {
    pool: Pool,
    outcomes: Arc<dyn DeliveryOutcomes>,
}

impl PgMailService {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            outcomes: Arc::new(NoOutcomes),
        }
    }

    /// Reports resends of deliveries that belong to a notification route to
    /// `outcomes`, in the resend's transaction (see [`DeliveryOutcomes`]).
    #[must_use]
    pub fn with_outcomes(mut self, outcomes: Arc<dyn DeliveryOutcomes>) -> Self {
        self.outcomes = outcomes;
        self
    }

    async fn conn(&self) -> Result<galaxy_db::PooledConn, MailError> {
        self.pool.get().await.map_err(|e| MailError::Db(e.into()))
    }
}

#[async_trait::async_trait]
impl MailService for PgMailService {
    async fn deliveries(
        &self,
        dead_letters_only: bool,
        page: Page,
    ) -> Result<Paged<Delivery>, MailError> {
        let mut c = self.conn().await?;
        let status = dead_letters_only.then_some("dead_lettered");
        Ok(store::list(&mut c, status, page).await?)
    }

    async fn delivery(&self, id: Uuid) -> Result<Delivery, MailError> {
        let mut c = self.conn().await?;
        store::get(&mut c, id).await?.ok_or(MailError::NotFound)
    }

    async fn attempts(&self, id: Uuid, page: Page) -> Result<Paged<Attempt>, MailError> {
        let mut c = self.conn().await?;
        if store::get(&mut c, id).await?.is_none() {
            return Err(MailError::NotFound);
        }
        Ok(store::attempts(&mut c, id, page).await?)
    }

    async fn resend(&self, id: Uuid) -> Result<Delivery, MailError> {
        let mut c = self.conn().await?;
        match store::resend(&mut c, id, self.outcomes.as_ref()).await? {
            ResendResult::Rearmed(row) => Ok(row),
            ResendResult::AlreadySent => Err(MailError::AlreadySent),
            ResendResult::Expired => Err(MailError::Expired),
            ResendResult::NotFound => Err(MailError::NotFound),
        }
    }

    async fn status_counts(&self) -> Result<StatusCounts, MailError> {
        let mut c = self.conn().await?;
        Ok(store::status_counts(&mut c).await?)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use diesel::result::{DatabaseErrorKind, Error};

    use super::*;

    #[test]
    fn a_connection_lost_mid_query_is_unavailable_not_internal() {
        let lost = Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_owned()),
        );
        let e = ApiError::from(MailError::from(lost));
        assert_eq!((e.status_code().as_u16(), e.code()), (503, "unavailable"));
    }
}
