//! `application/problem+json` errors (RFC 9457) with a stable machine `code`.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::request_id::current_request_id;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The JSON field (or query/path parameter) at fault.
    pub field: String,
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine word: `validation_failed`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict` (or a more specific conflict word),
    /// `rate_limited`, `payload_too_large`, `unavailable`, `internal`, …
    pub code: String,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error that becomes a problem+json response.
///
/// Domain crates map their `thiserror` enums into this at the HTTP edge.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Cow<'static, str>,
    errors: Vec<FieldError>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
        }
    }

    pub fn validation(detail: impl Into<Cow<'static, str>>, errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "validation_failed", detail);
        e.errors = errors;
        e
    }

    /// A single-field validation failure.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::validation(
            format!("{field}: {message}"),
            vec![FieldError {
                field: field.to_owned(),
                message,
            }],
        )
    }

    pub fn bad_request(
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// A 409; `code` may be more specific than `conflict` (e.g. `game_full`).
    pub fn conflict(
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later",
        );
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    pub fn unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// Adds `Retry-After: secs` (at least 1) to the response.
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// A 500. The cause is logged here, never sent to the client.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request id identifies it in the logs",
        )
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// The HTTP status, as a number (for servers on another HTTP stack).
    pub fn status_u16(&self) -> u16 {
        self.status.as_u16()
    }

    /// Seconds for `Retry-After`, when the error carries one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn to_problem(&self, request_id: String) -> Problem {
        Problem {
            type_: format!("https://galaxy.invalid/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.to_string(),
            code: self.code.to_string(),
            request_id,
            errors: self.errors.clone(),
        }
    }

    /// The default problem for a bare status (unknown route, wrong method, …).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status.as_u16() {
            400 => ("validation_failed", "the request is malformed"),
            401 => ("unauthorized", "authentication required"),
            403 => ("forbidden", "not allowed"),
            404 => ("not_found", "no such resource"),
            405 => ("method_not_allowed", "method not allowed on this resource"),
            409 => ("conflict", "conflict"),
            413 => ("payload_too_large", "the request body exceeds 64 KiB"),
            415 => ("unsupported_media_type", "expected application/json"),
            429 => ("rate_limited", "too many requests; retry later"),
            503 => ("unavailable", "service unavailable"),
            s if s >= 500 => ("internal", "internal error"),
            _ => ("error", "request failed"),
        };
        Self::new(status, code, detail)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.to_problem(current_request_id().unwrap_or_default());
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        ));
        if let Some(secs) = self.retry_after_secs {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        resp.body(serde_json::to_vec(&problem).unwrap_or_default())
    }
}
