//! App-wide HTTP plumbing shared by the backend and every module's tests:
//! extractor limits and error mapping, the 404 fallback, and the probes.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::problem::ApiError;
use crate::readiness::Readiness;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Registers extractor configuration (body limits, problem+json errors for
/// malformed JSON, query strings and path segments) and the 404 fallback.
/// Every app — the backend and each module's test app — calls this.
pub fn configure_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(BODY_LIMIT)
            .content_type_required(false)
            .error_handler(|err, _req| json_error(&err).into()),
    )
    .app_data(web::PayloadConfig::new(BODY_LIMIT))
    .app_data(web::QueryConfig::default().error_handler(|err, _req| query_error(&err).into()))
    .app_data(web::PathConfig::default().error_handler(|err, _req| path_error(&err).into()))
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}

fn json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::validation(format!("malformed JSON body: {e}"), Vec::new())
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::validation(format!("unreadable JSON body: {other}"), Vec::new()),
    }
}

fn query_error(err: &QueryPayloadError) -> ApiError {
    ApiError::validation(format!("bad query string: {err}"), Vec::new())
}

fn path_error(err: &PathError) -> ApiError {
    ApiError::validation(format!("bad path parameter: {err}"), Vec::new())
}

/// Maps an error actix produced itself into our problem type.
pub(crate) fn api_error_from_actix(err: &actix_web::Error, status: StatusCode) -> ApiError {
    if let Some(api) = err.as_error::<ApiError>() {
        return api.clone();
    }
    if let Some(e) = err.as_error::<JsonPayloadError>() {
        return json_error(e);
    }
    if let Some(PayloadError::Overflow) = err.as_error::<PayloadError>() {
        return ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if status.is_server_error() {
        return ApiError::internal(err);
    }
    ApiError::for_status(status)
}

/// Liveness: 200 while the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 when every readiness condition holds, else 503.
///
/// The 503 body names what is not ready. PostgreSQL is re-checked on each
/// call.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "Ready to serve", body = crate::readiness::ReadinessReport),
    (status = 503, description = "Not ready; the body names what is missing", body = crate::readiness::ReadinessReport)))]
pub async fn readyz(readiness: web::Data<Readiness>, _req: HttpRequest) -> HttpResponse {
    let report = readiness.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(report)
}

/// Mounts `/healthz` and `/readyz`. Routes are declared as resources so a
/// wrong method answers 405 (a bare `route` would fall through to 404).
pub fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}
