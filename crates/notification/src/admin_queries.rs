//! The PostgreSQL implementation of [`NotificationAdmin`]: intents and
//! routes read for the admin API and the console, and the route re-arm.

use galaxy_core::{Page, Paged};
use uuid::Uuid;

use crate::admin::NotificationAdmin;
use crate::error::NotificationError;
use crate::service::PgNotificationService;
use crate::store;
use crate::views::{IntentDetail, IntentView, RouteView};

type Result<T> = std::result::Result<T, NotificationError>;

#[async_trait::async_trait]
impl NotificationAdmin for PgNotificationService {
    async fn intents(&self, kind: Option<&str>, page: Page) -> Result<Paged<IntentView>> {
        Ok(store::list_intents(&mut *self.conn().await?, kind, page).await?)
    }

    async fn intent_detail(&self, id: Uuid) -> Result<IntentDetail> {
        let mut conn = self.conn().await?;
        let intent = store::intent(&mut conn, id)
            .await?
            .ok_or(NotificationError::NotFound)?;
        let routes = store::routes_of(&mut conn, &intent).await?;
        Ok(IntentDetail {
            id: intent.id,
            kind: intent.kind,
            idempotency_key: intent.idempotency_key,
            payload: intent.payload,
            created_at: intent.created_at,
            routes,
        })
    }

    async fn routes(&self, status: Option<&str>, page: Page) -> Result<Paged<RouteView>> {
        Ok(store::list_routes(&mut *self.conn().await?, status, page).await?)
    }

    async fn retry_route(&self, id: Uuid) -> Result<RouteView> {
        let mut conn = self.conn().await?;
        if let Some(route) = store::rearm_dead_letter(&mut conn, id).await? {
            tracing::info!(route_id = %id, "dead-lettered route re-armed by admin");
            return Ok(route);
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
