//! The admin surface over intents and routes as a trait, so that the admin
//! API and the operator console read and act through the same calls.

use galaxy_core::{Page, Paged};
use uuid::Uuid;

use crate::catalog;
use crate::error::NotificationError;
use crate::service::PgNotificationService;
use crate::store::{self, STATUSES};
use crate::views::{IntentDetail, IntentView, RouteView};

/// What admins see of the notification module and the one thing they do.
#[async_trait::async_trait]
pub trait NotificationAdmin: Send + Sync + 'static {
    /// Intents, newest first; `kind` must be a catalog kind.
    async fn intents(
        &self,
        kind: Option<&str>,
        page: Page,
    ) -> Result<Paged<IntentView>, NotificationError>;
    async fn intent_detail(&self, id: Uuid) -> Result<IntentDetail, NotificationError>;
    /// Routes, newest first; `status` must be one of [`route_statuses`].
    async fn routes(
        &self,
        status: Option<&str>,
        page: Page,
    ) -> Result<Paged<RouteView>, NotificationError>;
    /// Re-arms a dead-lettered push route.
    async fn retry_route(&self, id: Uuid) -> Result<RouteView, NotificationError>;
}

/// The route statuses a filter may name.
pub fn route_statuses() -> &'static [&'static str] {
    STATUSES
}

/// Whether `kind` is a catalog kind (a valid intents filter).
pub fn is_catalog_kind(kind: &str) -> bool {
    catalog::spec(kind).is_some()
}

#[async_trait::async_trait]
impl NotificationAdmin for PgNotificationService {
    async fn intents(
        &self,
        kind: Option<&str>,
        page: Page,
    ) -> Result<Paged<IntentView>, NotificationError> {
        let mut conn = self.conn().await?;
        let (rows, total) = store::list_intents(&mut conn, kind, page).await?;
        Ok(Paged::new(
            rows.into_iter().map(IntentView::from).collect(),
            page,
            total,
        ))
    }

    async fn intent_detail(&self, id: Uuid) -> Result<IntentDetail, NotificationError> {
        let mut conn = self.conn().await?;
        let intent = store::intent(&mut conn, id)
            .await?
            .ok_or(NotificationError::NotFound)?;
        let routes = store::routes_of_intent(&mut conn, id).await?;
        Ok(IntentDetail {
            id: intent.id,
            kind: intent.kind,
            idempotency_key: intent.idempotency_key,
            payload: intent.payload,
            created_at: intent.created_at,
            routes: routes.into_iter().map(RouteView::from).collect(),
        })
    }

    async fn routes(
        &self,
        status: Option<&str>,
        page: Page,
    ) -> Result<Paged<RouteView>, NotificationError> {
        let mut conn = self.conn().await?;
        let (rows, total) = store::list_routes(&mut conn, status, page).await?;
        Ok(Paged::new(
            rows.into_iter().map(RouteView::from).collect(),
            page,
            total,
        ))
    }

    async fn retry_route(&self, id: Uuid) -> Result<RouteView, NotificationError> {
        let mut conn = self.conn().await?;
        if let Some(route) = store::rearm_dead_letter(&mut conn, id).await? {
            tracing::info!(route_id = %id, "dead-lettered route re-armed by admin");
            return Ok(RouteView::from(route));
        }
        Err(match store::route(&mut conn, id).await? {
            None => NotificationError::NotFound,
            Some(r) => match r.mail_delivery_id {
                Some(delivery_id) => NotificationError::FollowsMail { delivery_id },
                None => NotificationError::NotRetryable { status: r.status },
            },
        })
    }
}
