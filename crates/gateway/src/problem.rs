//! Problem+json answers on the gateway's HTTP stack, from the same
//! [`ApiError`] the backend uses, so clients see one error shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use galaxy_core::ApiError;

const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An [`ApiError`] answered by the gateway itself.
#[derive(Debug)]
pub struct GatewayError(pub ApiError);

impl From<ApiError> for GatewayError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        problem_response(&self.0)
    }
}

/// The response for `err`, carrying the current request id.
pub fn problem_response(err: &ApiError) -> Response {
    let problem = err.to_problem(galaxy_core::current_request_id().unwrap_or_default());
    let status =
        StatusCode::from_u16(err.status_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, serde_json::to_vec(&problem).unwrap_or_default()).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    if let Some(secs) = err.retry_after_secs() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// 502 `bad_gateway`: no backend could be reached.
pub fn bad_gateway(detail: &'static str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::BAD_GATEWAY,
        "bad_gateway",
        detail,
    )
}

/// 504 `gateway_timeout`: the backend did not answer in time.
pub fn gateway_timeout() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::GATEWAY_TIMEOUT,
        "gateway_timeout",
        "the backend did not answer within GATEWAY_UPSTREAM_TIMEOUT",
    )
}

/// Whether a response already carries a JSON body a client can read.
pub fn is_json(res: &Response) -> bool {
    res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_CONTENT_TYPE.as_bytes()) || v.starts_with(b"application/json")
    })
}

/// A bare framework error (axum's own 405, a rejected upgrade …) becomes
/// a problem; a JSON body chosen by a handler or the backend is kept.
pub fn ensure_problem(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&res) {
        return res;
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let status = actix_web::http::StatusCode::from_u16(status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut replaced = problem_response(&ApiError::for_status(status));
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}
