//! The admin surface over intents and routes as a trait, so that the admin
//! API and the operator console read and act through the same calls.

use galaxy_core::{Page, Paged};
use uuid::Uuid;

use crate::catalog;
use crate::error::NotificationError;
use crate::store::STATUSES;
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
