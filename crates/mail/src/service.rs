//! The mail module's public face for the admin surface and metrics.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use galaxy_core::{ApiError, Page, Paged};
use galaxy_db::Pool;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::outcomes::{DeliveryOutcomes, NoOutcomes};
use crate::store::{self, AttemptRow, DeliveryRow, ResendResult, StatusCounts};

/// A delivery as operators see it. Subject and body are not shown: they can
/// carry one-time sign-in codes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    /// Template kind, e.g. `auth.login_code`.
    pub kind: String,
    pub to_address: String,
    /// `pending`, `retrying`, `sent` or `dead_lettered`.
    pub status: String,
    /// Tries in the current cycle (reset by resend).
    pub cycle_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub notification_route_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            to_address: r.to_address,
            status: r.status,
            cycle_attempts: r.cycle_attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            notification_route_id: r.notification_route_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            sent_at: r.sent_at,
        }
    }
}

/// One try to deliver a mail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    pub delivery_id: Uuid,
    /// 1, 2, … across the whole history of the delivery (resends continue).
    pub attempt_no: i32,
    pub started_at: DateTime<Utc>,
    /// Null while the try is in progress.
    pub finished_at: Option<DateTime<Utc>>,
    /// `sent`, `failed`, or null while in progress.
    pub outcome: Option<String>,
    pub smtp_code: Option<i32>,
    pub error: Option<String>,
}

impl From<AttemptRow> for Attempt {
    fn from(r: AttemptRow) -> Self {
        Self {
            delivery_id: r.delivery_id,
            attempt_no: r.attempt_no,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome,
            smtp_code: r.smtp_code,
            error: r.error,
        }
    }
}

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

impl From<diesel::result::Error> for MailError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

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
        let (rows, total) = store::list(&mut c, status, page.offset(), page.limit()).await?;
        Ok(Paged::new(
            rows.into_iter().map(Delivery::from).collect(),
            page,
            total,
        ))
    }

    async fn delivery(&self, id: Uuid) -> Result<Delivery, MailError> {
        let mut c = self.conn().await?;
        store::get(&mut c, id)
            .await?
            .map(Delivery::from)
            .ok_or(MailError::NotFound)
    }

    async fn attempts(&self, id: Uuid, page: Page) -> Result<Paged<Attempt>, MailError> {
        let mut c = self.conn().await?;
        if store::get(&mut c, id).await?.is_none() {
            return Err(MailError::NotFound);
        }
        let (rows, total) = store::attempts(&mut c, id, page.offset(), page.limit()).await?;
        Ok(Paged::new(
            rows.into_iter().map(Attempt::from).collect(),
            page,
            total,
        ))
    }

    async fn resend(&self, id: Uuid) -> Result<Delivery, MailError> {
        let mut c = self.conn().await?;
        match store::resend(&mut c, id, self.outcomes.as_ref()).await? {
            ResendResult::Rearmed(row) => Ok(row.into()),
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
