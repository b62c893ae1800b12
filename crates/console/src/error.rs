//! The console's error: every failure as a page with the module error's
//! status, code and detail, or a redirect to the login when signed out.

use std::fmt;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use galaxy_core::ApiError;
use maud::html;

use crate::html::public_page;

/// An error as a page. `SignedOut` on a GET sends the browser to the login.
#[derive(Debug)]
pub enum ConsoleError {
    SignedOut,
    Page {
        status: StatusCode,
        code: String,
        detail: String,
    },
}

impl ConsoleError {
    pub fn forbidden(detail: &str) -> Self {
        Self::Page {
            status: StatusCode::FORBIDDEN,
            code: "forbidden".to_owned(),
            detail: detail.to_owned(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::Page {
            status: StatusCode::BAD_REQUEST,
            code: "validation_failed".to_owned(),
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: &str) -> Self {
        Self::Page {
            status: StatusCode::NOT_FOUND,
            code: "not_found".to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// The module error's problem, as a page (same status, code and detail).
    pub fn api(e: impl Into<ApiError>) -> Self {
        let e: ApiError = e.into();
        let mut detail = e.detail().to_owned();
        for f in e.field_errors() {
            detail.push_str(&format!("; {}: {}", f.field, f.message));
        }
        Self::Page {
            status: StatusCode::from_u16(e.status_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.code().to_owned(),
            detail,
        }
    }

    /// The code recorded in the audit log.
    pub fn code(&self) -> &str {
        match self {
            Self::SignedOut => "signed_out",
            Self::Page { code, .. } => code,
        }
    }
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SignedOut => f.write_str("signed out"),
            Self::Page { code, detail, .. } => write!(f, "{code}: {detail}"),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignedOut => StatusCode::SEE_OTHER,
            Self::Page { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignedOut => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/console/login"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish(),
            Self::Page {
                status,
                code,
                detail,
            } => {
                let title = status.canonical_reason().unwrap_or("Error");
                public_page(
                    *status,
                    title,
                    html! {
                        p.error { (detail) }
                        p { "Code: " code { (code) } }
                        p { a href="/console" { "Console home" } }
                    },
                )
            }
        }
    }
}

/// `.html()?` turns a module error into an error page.
pub trait OrPage<T> {
    fn html(self) -> Result<T, ConsoleError>;
}

impl<T, E: Into<ApiError>> OrPage<T> for Result<T, E> {
    fn html(self) -> Result<T, ConsoleError> {
        self.map_err(ConsoleError::api)
    }
}
