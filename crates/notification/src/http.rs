//! HTTP routes: the user inbox and the admin notification views.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use galaxy_core::{AdminPrincipal, ApiError, PageQuery, Paged, Problem, UserPrincipal};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::catalog;
use crate::error::NotificationError;
use crate::service::PgNotificationService;
use crate::store::{self, IntentRow, RouteRow, STATUSES};

type Service = web::Data<PgNotificationService>;

/// Mounts the inbox and admin routes; `service` becomes app data.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<PgNotificationService>) {
    cfg.app_data(web::Data::from(service))
        .service(web::resource("/api/v1/user/notifications").get(inbox))
        .service(web::resource("/api/v1/user/notifications/{id}/read").post(mark_read))
        .service(web::resource("/api/v1/admin/notifications/intents").get(list_intents))
        .service(web::resource("/api/v1/admin/notifications/intents/{id}").get(intent_detail))
        .service(web::resource("/api/v1/admin/notifications/routes").get(list_routes))
        .service(web::resource("/api/v1/admin/notifications/routes/{id}/retry").post(retry_route));
}

#[derive(OpenApi)]
#[openapi(
    paths(inbox, mark_read, list_intents, intent_detail, list_routes, retry_route),
    components(schemas(InboxItem, IntentView, IntentDetail, RouteView, Problem)),
    tags(
        (name = "notifications", description = "The user's notification inbox"),
        (name = "admin-notifications", description = "Notification intents and routes (admin)")
    )
)]
struct NotificationDoc;

/// This module's part of the backend's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    NotificationDoc::openapi()
}

/// One inbox entry: a push notification addressed to the caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxItem {
    /// The route id (use it to mark the entry read).
    pub id: Uuid,
    pub kind: String,
    /// The kind's payload (see docs/notifications.md).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// `true`: only entries not yet marked read.
    pub unread: Option<bool>,
}

fn db<E: Into<NotificationError>>(e: E) -> ApiError {
    ApiError::from(e.into())
}

/// The caller's notifications, newest first.
#[utoipa::path(
    get, path = "/api/v1/user/notifications", tag = "notifications",
    params(PageQuery, InboxQuery),
    security(("user_token" = [])),
    responses(
        (status = 200, description = "A page of the inbox", body = Paged<InboxItem>),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid session", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(account_id = %user.account_id))]
async fn inbox(
    service: Service,
    user: UserPrincipal,
    page: web::Query<PageQuery>,
    query: web::Query<InboxQuery>,
) -> Result<web::Json<Paged<InboxItem>>, ApiError> {
    let page = page.into_inner().validate()?;
    let q = query.into_inner();
    let mut conn = service.conn().await?;
    let (rows, total) = store::inbox(&mut conn, user.account_id, q.unread == Some(true), page)
        .await
        .map_err(db)?;
    let items = rows
        .into_iter()
        .map(|r| InboxItem {
            id: r.route_id,
            kind: r.kind,
            payload: r.payload,
            created_at: r.created_at,
            read_at: r.read_at,
        })
        .collect();
    Ok(web::Json(Paged::new(items, page, total)))
}

/// Marks one of the caller's notifications read (idempotent).
#[utoipa::path(
    post, path = "/api/v1/user/notifications/{id}/read", tag = "notifications",
    params(("id" = Uuid, Path, description = "Inbox entry (route) id")),
    security(("user_token" = [])),
    responses(
        (status = 204, description = "Marked read"),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of the caller's notifications", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(account_id = %user.account_id))]
async fn mark_read(
    service: Service,
    user: UserPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = service.conn().await?;
    let n = store::mark_read(&mut conn, id.into_inner(), user.account_id)
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(NotificationError::NotFound.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A stored intent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IntentView {
    pub id: Uuid,
    pub kind: String,
    pub idempotency_key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl From<IntentRow> for IntentView {
    fn from(r: IntentRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            idempotency_key: r.idempotency_key,
            payload: r.payload,
            created_at: r.created_at,
        }
    }
}

/// An intent with every route it materialised.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IntentDetail {
    pub id: Uuid,
    pub kind: String,
    pub idempotency_key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub routes: Vec<RouteView>,
}

/// One delivery route: one recipient on one channel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RouteView {
    pub id: Uuid,
    pub intent_id: Uuid,
    /// `push` or `email`.
    pub channel: String,
    pub account_id: Option<Uuid>,
    /// Email routes: the address the mail was enqueued for.
    pub address: Option<String>,
    /// `pending`, `retrying`, `delivered`, `skipped`, `dead_lettered`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Why a `skipped` route was not delivered (`user_deleted`,
    /// `admin_email_not_configured`, `no_email_address`).
    pub skip_reason: Option<String>,
    /// Email routes: the mail delivery (see /api/v1/admin/mail/deliveries/{id}).
    pub mail_delivery_id: Option<Uuid>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RouteRow> for RouteView {
    fn from(r: RouteRow) -> Self {
        Self {
            id: r.id,
            intent_id: r.intent_id,
            channel: r.channel,
            account_id: r.account_id,
            address: r.address,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            skip_reason: r.skip_reason,
            mail_delivery_id: r.mail_delivery_id,
            read_at: r.read_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntentsQuery {
    /// Only intents of this catalog kind.
    pub kind: Option<String>,
}

/// Intents, newest first.
#[utoipa::path(
    get, path = "/api/v1/admin/notifications/intents", tag = "admin-notifications",
    params(PageQuery, IntentsQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of intents", body = Paged<IntentView>),
        (status = 400, description = "Bad query (unknown kind, bad page)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid admin session", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn list_intents(
    service: Service,
    admin: AdminPrincipal,
    page: web::Query<PageQuery>,
    query: web::Query<IntentsQuery>,
) -> Result<web::Json<Paged<IntentView>>, ApiError> {
    let page = page.into_inner().validate()?;
    let q = query.into_inner();
    let kind = q.kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind
        && catalog::spec(k).is_none()
    {
        return Err(ApiError::invalid_field("kind", "is not a catalog kind"));
    }
    let mut conn = service.conn().await?;
    let (rows, total) = store::list_intents(&mut conn, kind.as_deref(), page)
        .await
        .map_err(db)?;
    Ok(web::Json(Paged::new(
        rows.into_iter().map(IntentView::from).collect(),
        page,
        total,
    )))
}

/// One intent with its routes.
#[utoipa::path(
    get, path = "/api/v1/admin/notifications/intents/{id}", tag = "admin-notifications",
    params(("id" = Uuid, Path, description = "Intent id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The intent and its routes", body = IntentDetail),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid admin session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such intent", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn intent_detail(
    service: Service,
    admin: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<web::Json<IntentDetail>, ApiError> {
    let id = id.into_inner();
    let mut conn = service.conn().await?;
    let intent = store::intent(&mut conn, id)
        .await
        .map_err(db)?
        .ok_or(NotificationError::NotFound)?;
    let routes = store::routes_of_intent(&mut conn, id).await.map_err(db)?;
    Ok(web::Json(IntentDetail {
        id: intent.id,
        kind: intent.kind,
        idempotency_key: intent.idempotency_key,
        payload: intent.payload,
        created_at: intent.created_at,
        routes: routes.into_iter().map(RouteView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoutesQuery {
    /// `pending`, `retrying`, `delivered`, `skipped` or `dead_lettered`.
    pub status: Option<String>,
}

/// Routes, newest first, optionally by status.
#[utoipa::path(
    get, path = "/api/v1/admin/notifications/routes", tag = "admin-notifications",
    params(PageQuery, RoutesQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of routes", body = Paged<RouteView>),
        (status = 400, description = "Bad query (unknown status, bad page)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid admin session", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn list_routes(
    service: Service,
    admin: AdminPrincipal,
    page: web::Query<PageQuery>,
    query: web::Query<RoutesQuery>,
) -> Result<web::Json<Paged<RouteView>>, ApiError> {
    let page = page.into_inner().validate()?;
    let q = query.into_inner();
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::invalid_field(
            "status",
            format!("must be one of {}", STATUSES.join(", ")),
        ));
    }
    let mut conn = service.conn().await?;
    let (rows, total) = store::list_routes(&mut conn, status.as_deref(), page)
        .await
        .map_err(db)?;
    Ok(web::Json(Paged::new(
        rows.into_iter().map(RouteView::from).collect(),
        page,
        total,
    )))
}

/// Re-arms a dead-lettered route for a new cycle of attempts.
#[utoipa::path(
    post, path = "/api/v1/admin/notifications/routes/{id}/retry", tag = "admin-notifications",
    params(("id" = Uuid, Path, description = "Route id")),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Re-armed; the worker delivers it", body = RouteView),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid admin session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The route is not dead-lettered (code route_not_dead_lettered)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn retry_route(
    service: Service,
    admin: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut conn = service.conn().await?;
    match store::rearm_dead_letter(&mut conn, id).await.map_err(db)? {
        Some(route) => {
            tracing::info!(route_id = %id, "dead-lettered route re-armed by admin");
            Ok(HttpResponse::Accepted().json(RouteView::from(route)))
        }
        None => match store::route(&mut conn, id).await.map_err(db)? {
            None => Err(NotificationError::NotFound.into()),
            Some(r) => Err(NotificationError::NotRetryable { status: r.status }.into()),
        },
    }
}
