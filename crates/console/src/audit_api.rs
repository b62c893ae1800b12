//! The admin API's side of the audit log: one middleware records every
//! non-GET admin request (so no module's routes change), and
//! `GET /api/v1/admin/audit` lists the log.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::{AdminSessionRequired, BadPage};
use galaxy_core::{AdminPrincipal, AdminSessionResolver, ApiError, PageQuery, Paged, Problem};
use utoipa::OpenApi;

use crate::audit::{AuditEntry, AuditLog, Record};

const ADMIN_PREFIX: &str = "/api/v1/admin/";
/// A failed sign-in has no admin to name; the login limits cover it.
const UNAUDITED: &[&str] = &["/api/v1/admin/auth/login"];

/// Wrap the app with `from_fn(audit_api)`: records each admin API request
/// that is not a read, with its admin (resolved before the handler runs, so
/// a logout is attributed too), method and route pattern, path ids and
/// status. Requests without a valid admin session are not actions.
pub async fn audit_api(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let audited = req.path().starts_with(ADMIN_PREFIX)
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !UNAUDITED.contains(&req.path());
    let who = audited.then(|| principal(&req)).flatten();
    let log = req.app_data::<web::Data<AuditLog>>().cloned();
    let method = req.method().clone();
    let res = next.call(req).await?;
    if let (Some(who), Some(log)) = (who, log) {
        let pattern = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| res.request().path().to_owned());
        let action = format!("{method} {pattern}");
        let target: Vec<String> = res
            .request()
            .match_info()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let target = (!target.is_empty()).then(|| target.join(" "));
        let outcome = res.status().as_u16().to_string();
        log.record(Record {
            admin_id: who.admin_id,
            admin_username: &who.username,
            channel: "api",
            action: &action,
            target: target.as_deref(),
            outcome: &outcome,
        })
        .await;
    }
    Ok(res)
}

fn principal(req: &ServiceRequest) -> Option<AdminPrincipal> {
    let resolver = req.app_data::<web::Data<dyn AdminSessionResolver>>()?;
    let token = galaxy_core::bearer_token(req.request())?;
    resolver.resolve_admin(token)
}

/// Mounts `GET /api/v1/admin/audit` and registers the log as app data
/// (the middleware reads it from there).
pub fn configure(cfg: &mut web::ServiceConfig, log: Arc<AuditLog>) {
    cfg.app_data(web::Data::from(log))
        .service(web::resource("/api/v1/admin/audit").get(list_audit));
}

/// Admin actions through the API and the console, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    security(("admin_token" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of audit entries, newest first", body = Paged<AuditEntry>),
        AdminSessionRequired, BadPage,
        (status = 503, description = "The database is unavailable (`unavailable`, `Retry-After`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn list_audit(
    log: web::Data<AuditLog>,
    who: AdminPrincipal,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().validate()?;
    Ok(HttpResponse::Ok().json(log.list(page).await?))
}

#[derive(OpenApi)]
#[openapi(paths(list_audit), components(schemas(AuditEntry, Paged<AuditEntry>)))]
struct AuditDoc;

/// The audit route's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    AuditDoc::openapi()
}
