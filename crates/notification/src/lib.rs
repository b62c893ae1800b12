//! Notifications: the intent catalog, idempotent submit (also inside a
//! caller's transaction), one route per recipient and channel, the gRPC push
//! service gateways subscribe to, the retry worker, the user inbox and the
//! admin views. See `docs/notifications.md` for the catalog.

mod admin;
mod admin_queries;
mod catalog;
mod error;
mod follow;
mod http;
mod intents;
mod model;
mod outcome;
mod push;
pub mod schema;
mod service;
mod settings;
mod store;
mod submit;
mod subscribe;
mod views;
mod worker;

/// Generated from `proto/push.proto` (server and client).
pub mod proto {
    tonic::include_proto!("galaxy.push.v1");
}

pub use admin::{NotificationAdmin, is_catalog_kind, route_statuses};
pub use catalog::{
    Audience, CATALOG, FieldType, Intent, KindSpec, LOBBY_GAME_STARTED, LOBBY_MEMBER_JOINED,
    MAX_IDEMPOTENCY_KEY, MAX_RECIPIENTS, RUNTIME_CONTAINER_START_FAILED, RUNTIME_IMAGE_PULL_FAILED,
    RUNTIME_START_CONFIG_INVALID, RUNTIME_TURN_GENERATED,
};
pub use error::NotificationError;
pub use follow::RoutesFollowMail;
pub use http::{configure, openapi};
pub use model::{InboxFilter, NotificationSettings, PendingPush, RecipientDirectory, Submitted};
pub use push::{PushGrpc, PushHub, Subscription};
pub use service::{NotificationService, PgNotificationService};
pub use settings::VARIABLES;
pub use store::{CHANNEL_EMAIL, CHANNEL_PUSH, route_counts, skip_user_routes};
pub use subscribe::subscribe_request;
pub use views::{InboxItem, IntentDetail, IntentView, RouteView};
pub use worker::NO_SUBSCRIBER;
