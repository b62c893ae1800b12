//! `/api/v1/admin/mail/*`, guarded by the `AdminPrincipal` extractor.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::{AdminSessionRequired, BadPage, MalformedId};
use galaxy_core::{AdminPrincipal, ApiError, PageQuery, Paged, Problem};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::service::{Attempt, Delivery, MailService};

/// Mounts the admin mail routes and registers `service` for them.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<dyn MailService>) {
    cfg.app_data(web::Data::<dyn MailService>::from(service))
        .service(web::resource("/api/v1/admin/mail/deliveries").get(list_deliveries))
        .service(web::resource("/api/v1/admin/mail/dead-letters").get(list_dead_letters))
        .service(web::resource("/api/v1/admin/mail/deliveries/{delivery_id}").get(get_delivery))
        .service(
            web::resource("/api/v1/admin/mail/deliveries/{delivery_id}/attempts")
                .get(list_attempts),
        )
        .service(web::resource("/api/v1/admin/mail/deliveries/{delivery_id}/resend").post(resend));
}

#[derive(OpenApi)]
#[openapi(
    paths(list_deliveries, list_dead_letters, get_delivery, list_attempts, resend),
    components(schemas(Delivery, Attempt, Paged<Delivery>, Paged<Attempt>)),
    tags((name = "admin-mail", description = "Mail outbox inspection and resend (admin)"))
)]
struct MailDoc;

/// The mail module's OpenAPI document, merged by the binary.
pub fn openapi() -> utoipa::openapi::OpenApi {
    MailDoc::openapi()
}

galaxy_core::problem_responses! {
    /// 404 of the `/api/v1/admin/mail/deliveries/{delivery_id}…` routes.
    struct NoSuchDelivery = (404, "No such delivery");
}

/// A page of deliveries, newest first: every one, or only the dead-lettered.
async fn deliveries_page(
    mail: &dyn MailService,
    q: PageQuery,
    dead_letters_only: bool,
) -> Result<HttpResponse, ApiError> {
    let page = q.validate()?;
    Ok(HttpResponse::Ok().json(mail.deliveries(dead_letters_only, page).await?))
}

/// Every mail delivery, newest first.
#[utoipa::path(get, path = "/api/v1/admin/mail/deliveries", tag = "admin-mail",
    security(("admin_token" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of deliveries, newest first", body = Paged<Delivery>),
        AdminSessionRequired, BadPage))]
#[tracing::instrument(skip_all, fields(admin_id = %admin.admin_id))]
async fn list_deliveries(
    admin: AdminPrincipal,
    mail: web::Data<dyn MailService>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    deliveries_page(&**mail, q.into_inner(), false).await
}

/// Dead-lettered mail deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/admin/mail/dead-letters", tag = "admin-mail",
    security(("admin_token" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of dead-lettered deliveries, newest first", body = Paged<Delivery>),
        AdminSessionRequired, BadPage))]
#[tracing::instrument(skip_all, fields(admin_id = %admin.admin_id))]
async fn list_dead_letters(
    admin: AdminPrincipal,
    mail: web::Data<dyn MailService>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    deliveries_page(&**mail, q.into_inner(), true).await
}

/// One mail delivery (without subject and body, which can carry sign-in codes).
#[utoipa::path(get, path = "/api/v1/admin/mail/deliveries/{delivery_id}", tag = "admin-mail",
    security(("admin_token" = [])),
    params(("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery", body = Delivery),
        AdminSessionRequired, MalformedId, NoSuchDelivery))]
#[tracing::instrument(skip_all, fields(admin_id = %admin.admin_id, delivery_id = %id))]
async fn get_delivery(
    admin: AdminPrincipal,
    mail: web::Data<dyn MailService>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(mail.delivery(id.into_inner()).await?))
}

/// The delivery's tries, newest first.
#[utoipa::path(get, path = "/api/v1/admin/mail/deliveries/{delivery_id}/attempts", tag = "admin-mail",
    security(("admin_token" = [])),
    params(("delivery_id" = Uuid, Path, description = "Delivery id"), PageQuery),
    responses(
        (status = 200, description = "A page of attempts, newest first", body = Paged<Attempt>),
        AdminSessionRequired, NoSuchDelivery,
        (status = 400, description = "Malformed id or page parameters", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %admin.admin_id, delivery_id = %id))]
async fn list_attempts(
    admin: AdminPrincipal,
    mail: web::Data<dyn MailService>,
    id: web::Path<Uuid>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = q.into_inner().validate()?;
    Ok(HttpResponse::Ok().json(mail.attempts(id.into_inner(), page).await?))
}

/// Re-arms a delivery for a fresh cycle of tries.
///
/// For a `pending`, `retrying` or `dead_lettered` delivery: `pending`, due
/// now, cycle counter reset, attempts keep their numbering; a try running
/// right now keeps its lease. 409 once `sent`. A notification email route
/// linked to the delivery goes back to `pending` with it and follows it
/// again.
#[utoipa::path(post, path = "/api/v1/admin/mail/deliveries/{delivery_id}/resend", tag = "admin-mail",
    security(("admin_token" = [])),
    params(("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Re-armed: pending, due now, cycle counter reset", body = Delivery),
        AdminSessionRequired, MalformedId, NoSuchDelivery,
        (status = 409, description = "Already sent (code `already_sent`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %admin.admin_id, delivery_id = %id))]
async fn resend(
    admin: AdminPrincipal,
    mail: web::Data<dyn MailService>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let delivery = mail.resend(id.into_inner()).await?;
    tracing::info!(admin = %admin.username, delivery_id = %delivery.id, "mail delivery re-armed");
    Ok(HttpResponse::Accepted().json(delivery))
}
