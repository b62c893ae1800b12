//! The operator console (SYSTEM.md §14): server-rendered admin pages at
//! `/console` on the backend's HTTP listener, reading and acting through the
//! same service traits as the admin API (the ports in [`Console`]), signed
//! in through the admin login service into a cookie session, CSRF-checked
//! forms, no JavaScript. Also the admin audit log: [`audit_api`] records the
//! admin API's actions, the console's handlers record their own.

mod audit;
mod audit_api;
mod error;
mod html;
mod pages;
mod session;
mod settings;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use galaxy_admin::AdminService;
use galaxy_core::ReadyFlag;
use galaxy_lobby::LobbyService;
use galaxy_mail::MailService;
use galaxy_notification::NotificationAdmin;
use galaxy_runtime::RuntimeService;

pub use audit::{AuditEntry, AuditLog};
pub use audit_api::{audit_api, configure as configure_audit_api, openapi};
pub use error::ConsoleError;
pub use session::{CookiePolicy, LOGIN_COOKIE, SESSION_COOKIE};
pub use settings::VARIABLES;

/// What the console reads and acts through: the admin API's own services.
#[derive(Clone)]
pub struct Console {
    pub admin: Arc<dyn AdminService>,
    pub mail: Arc<dyn MailService>,
    pub notifications: Arc<dyn NotificationAdmin>,
    pub runtime: Arc<dyn RuntimeService>,
    pub lobby: Arc<dyn LobbyService>,
    pub audit: Arc<AuditLog>,
    pub cookies: CookiePolicy,
}

/// Mounts `/console/*`. Needs the app-level `AdminSessionResolver` and
/// `Readiness` data the binary registers for the API.
pub fn configure(cfg: &mut web::ServiceConfig, console: Console) {
    use pages::{admins, dashboard, login, mail, notifications, runtime, users};
    let extractor_errors = |e: actix_web::Error| -> actix_web::Error {
        ConsoleError::bad_request(e.to_string()).into()
    };
    cfg.service(
        web::scope("/console")
            .wrap(from_fn(gate))
            .app_data(web::Data::new(console))
            .app_data(
                web::PathConfig::default().error_handler(move |e, _| extractor_errors(e.into())),
            )
            .app_data(
                web::QueryConfig::default().error_handler(move |e, _| extractor_errors(e.into())),
            )
            .app_data(
                web::FormConfig::default().error_handler(move |e, _| extractor_errors(e.into())),
            )
            .service(web::resource(["", "/"]).get(dashboard::show))
            .service(web::resource("/console.css").get(stylesheet))
            .service(web::resource("/login").get(login::form).post(login::submit))
            .service(web::resource("/logout").post(login::logout))
            .service(
                web::resource("/password")
                    .get(login::password_form)
                    .post(login::change_password),
            )
            .service(web::resource("/mail/deliveries").get(mail::deliveries))
            .service(web::resource("/mail/dead-letters").get(mail::dead_letters))
            .service(web::resource("/mail/deliveries/{id}").get(mail::delivery))
            .service(web::resource("/mail/deliveries/{id}/resend").post(mail::resend))
            .service(web::resource("/notifications/intents").get(notifications::intents))
            .service(web::resource("/notifications/intents/{id}").get(notifications::intent))
            .service(web::resource("/notifications/routes").get(notifications::routes))
            .service(web::resource("/notifications/routes/{id}/retry").post(notifications::retry))
            .service(web::resource("/runtime").get(runtime::records))
            .service(web::resource("/runtime/{game_id}").get(runtime::record))
            .service(web::resource("/runtime/{game_id}/{op}").post(runtime::operate))
            .service(web::resource("/games").get(runtime::games))
            .service(
                web::resource("/engine-versions")
                    .get(runtime::versions)
                    .post(runtime::create_version),
            )
            .service(
                web::resource("/engine-versions/{version}/status").post(runtime::version_status),
            )
            .service(web::resource("/users").get(users::list))
            .service(web::resource("/users/{id}").get(users::detail))
            .service(web::resource("/users/{id}/{op}").post(users::operate))
            .service(
                web::resource("/admins")
                    .get(admins::list)
                    .post(admins::create),
            )
            .service(web::resource("/audit").get(admins::audit))
            .default_service(web::to(not_found)),
    );
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(html::STYLESHEET)
}

async fn not_found(_req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::not_found("no such console page"))
}

/// Until boot completes the caches are cold: answer 503 (as the API does).
/// Framework errors inside `/console` (a wrong method's 405, …) become
/// pages too, keeping their status and `Allow`.
async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::header;
    let booted = req
        .app_data::<web::Data<ReadyFlag>>()
        .is_none_or(|flag| flag.is_ready());
    if !booted {
        return Err(ConsoleError::Page {
            status: actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable".to_owned(),
            detail: "the backend is starting; retry shortly".to_owned(),
        }
        .into());
    }
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_page {
        return Ok(res);
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut page = actix_web::ResponseError::error_response(&ConsoleError::Page {
        status,
        code: status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_"),
        detail: "the console cannot answer this request".to_owned(),
    });
    if let Some(allow) = allow {
        page.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(ServiceResponse::new(req, page))
}
