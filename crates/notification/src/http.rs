//! HTTP routes: the user inbox and the admin notification views.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::{AdminSessionRequired, MalformedId, UserSessionRequired};
use galaxy_core::{AdminPrincipal, ApiError, PageQuery, Paged, Problem, UserPrincipal};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::catalog;
use crate::error::NotificationError;
use crate::model::InboxFilter;
use crate::service::NotificationService;
use crate::store::STATUSES;
use crate::views::{InboxItem, IntentDetail, IntentView, RouteView};

type Service = web::Data<dyn NotificationService>;

/// Mounts the inbox and admin routes; `service` becomes app data.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<dyn NotificationService>) {
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// `true`: only entries not yet marked read.
    pub unread: Option<bool>,
    /// An inbox item id of the caller's: list instead the items after it,
    /// oldest first, at most `page_size` (`page` is ignored). The gateway's
    /// resume cursor.
    pub after: Option<Uuid>,
}

/// The caller's notifications, newest first (or, with `after`, oldest first after a cursor).
#[utoipa::path(get, path = "/api/v1/user/notifications", tag = "notifications",
    params(PageQuery, InboxQuery), security(("user_token" = [])),
    responses(
        (status = 200, description = "A page of the inbox", body = Paged<InboxItem>),
        UserSessionRequired,
        (status = 400, description = "Bad query", body = Problem),
        (status = 404, description = "`after` is not one of the caller's notifications", body = Problem)))]
#[tracing::instrument(skip_all, fields(account_id = %user.account_id))]
async fn inbox(
    service: Service,
    user: UserPrincipal,
    page: web::Query<PageQuery>,
    query: web::Query<InboxQuery>,
) -> Result<web::Json<Paged<InboxItem>>, ApiError> {
    let page = page.into_inner().validate()?;
    let q = query.into_inner();
    let filter = InboxFilter {
        unread_only: q.unread == Some(true),
        after: q.after,
    };
    let (items, total, page) = service
        .inbox(user.account_id, filter, page)
        .await?
        .ok_or_else(|| ApiError::not_found("after: not one of your notifications"))?;
    Ok(web::Json(Paged::new(items, page, total)))
}

/// Marks one of the caller's notifications read (idempotent).
#[utoipa::path(post, path = "/api/v1/user/notifications/{id}/read", tag = "notifications",
    params(("id" = Uuid, Path, description = "Inbox entry (route) id")),
    security(("user_token" = [])),
    responses(
        (status = 204, description = "Marked read"),
        UserSessionRequired, MalformedId,
        (status = 404, description = "Not one of the caller's notifications", body = Problem)))]
#[tracing::instrument(skip_all, fields(account_id = %user.account_id))]
async fn mark_read(
    service: Service,
    user: UserPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if !service.mark_read(id.into_inner(), user.account_id).await? {
        return Err(NotificationError::NotFound.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntentsQuery {
    /// Only intents of this catalog kind (empty: every kind).
    #[param(
        pattern = r"^(lobby\.game_started|lobby\.member_joined|runtime\.turn_generated|runtime\.image_pull_failed|runtime\.container_start_failed|runtime\.start_config_invalid)?$"
    )]
    pub kind: Option<String>,
}

/// A listing filter from the query string: absent or empty is no filter;
/// any other value must be `known`, else the request is 400 on `field`
/// saying `must()` (built only for a refusal).
fn filter(
    field: &str,
    value: Option<String>,
    known: impl Fn(&str) -> bool,
    must: impl FnOnce() -> String,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if !known(&v) => Err(ApiError::invalid_field(field, must())),
        v => Ok(v),
    }
}

/// Intents, newest first.
#[utoipa::path(get, path = "/api/v1/admin/notifications/intents", tag = "admin-notifications",
    params(PageQuery, IntentsQuery), security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of intents", body = Paged<IntentView>),
        AdminSessionRequired,
        (status = 400, description = "Bad query (unknown kind, bad page)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn list_intents(
    service: Service,
    admin: AdminPrincipal,
    page: web::Query<PageQuery>,
    query: web::Query<IntentsQuery>,
) -> Result<web::Json<Paged<IntentView>>, ApiError> {
    let page = page.into_inner().validate()?;
    let IntentsQuery { kind } = query.into_inner();
    let must = || "is not a catalog kind".to_owned();
    let kind = filter("kind", kind, |k| catalog::spec(k).is_some(), must)?;
    Ok(web::Json(service.intents(kind.as_deref(), page).await?))
}

/// One intent with its routes.
#[utoipa::path(get, path = "/api/v1/admin/notifications/intents/{id}", tag = "admin-notifications",
    params(("id" = Uuid, Path, description = "Intent id")), security(("admin_token" = [])),
    responses(
        (status = 200, description = "The intent and its routes", body = IntentDetail),
        AdminSessionRequired, MalformedId,
        (status = 404, description = "No such intent", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn intent_detail(
    service: Service,
    admin: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<web::Json<IntentDetail>, ApiError> {
    Ok(web::Json(service.intent_detail(id.into_inner()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoutesQuery {
    /// `pending`, `retrying`, `delivered`, `skipped` or `dead_lettered` (empty: every status).
    #[param(pattern = "^(pending|retrying|delivered|skipped|dead_lettered)?$")]
    pub status: Option<String>,
}

/// Routes, newest first, optionally by status.
#[utoipa::path(get, path = "/api/v1/admin/notifications/routes", tag = "admin-notifications",
    params(PageQuery, RoutesQuery), security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of routes", body = Paged<RouteView>),
        AdminSessionRequired,
        (status = 400, description = "Bad query (unknown status, bad page)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn list_routes(
    service: Service,
    admin: AdminPrincipal,
    page: web::Query<PageQuery>,
    query: web::Query<RoutesQuery>,
) -> Result<web::Json<Paged<RouteView>>, ApiError> {
    let page = page.into_inner().validate()?;
    let RoutesQuery { status } = query.into_inner();
    let must = || format!("must be one of {}", STATUSES.join(", "));
    let status = filter("status", status, |s| STATUSES.contains(&s), must)?;
    Ok(web::Json(service.routes(status.as_deref(), page).await?))
}

/// Re-arms a dead-lettered push route for a new cycle of attempts.
///
/// `dead_lettered` → `pending` with `attempts` reset; the worker pushes it
/// to the subscribed gateways. An email route follows its mail instead:
/// resend the mail (`POST /api/v1/admin/mail/deliveries/{id}/resend`), and
/// the route goes back to `pending` with it.
#[utoipa::path(post, path = "/api/v1/admin/notifications/routes/{id}/retry", tag = "admin-notifications",
    params(("id" = Uuid, Path, description = "Route id")), security(("admin_token" = [])),
    responses(
        (status = 202, description = "Re-armed; the worker delivers it", body = RouteView),
        AdminSessionRequired, MalformedId,
        (status = 404, description = "No such route", body = Problem),
        (status = 409, description = "The route is not dead-lettered (code route_not_dead_lettered), or is an email route, which follows its mail: resend the mail (code route_follows_mail)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
async fn retry_route(
    service: Service,
    admin: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let route = service.retry_route(id.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(route))
}
