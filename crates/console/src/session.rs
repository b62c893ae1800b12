//! Console sessions: the cookie holds an admin session token (`ga_…`, from
//! the admin login service), resolved by the same `AdminSessionResolver` as
//! the admin API's bearer tokens, so logout, expiry and a password change's
//! revocations apply to both. Only the cookie opens the console (a bearer
//! header is never read here) and the admin API never reads the cookie.
//!
//! CSRF: each form carries `csrf = sha256("console-csrf:" + token)` in hex.
//! It is tied to the session (another session's value differs), needs no
//! server-side state (any backend sharing the database can check it) and
//! reveals nothing of the token; it is compared in constant time.

use std::future::{Ready, ready};

use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use galaxy_core::{AdminPrincipal, AdminSessionResolver};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ConsoleError;

pub const SESSION_COOKIE: &str = "galaxy_console";
/// Double-submit value of the login form (there is no session yet).
pub const LOGIN_COOKIE: &str = "galaxy_console_login";

/// Cookie attributes chosen at start (`BACKEND_CONSOLE_INSECURE_COOKIE`).
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    /// A `Set-Cookie` value scoped to `/console`; `max_age` 0 deletes it.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        )
    }
}

/// The value of cookie `name` in the request's `Cookie` header(s).
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub fn csrf_for(token: &str) -> String {
    hex::encode(Sha256::digest(format!("console-csrf:{token}").as_bytes()))
}

pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in console admin. As an extractor: a GET without a session
/// redirects to the login page, anything else answers 403.
#[derive(Debug, Clone)]
pub struct ConsoleAdmin {
    pub principal: AdminPrincipal,
    /// This session's CSRF value, for the forms a page renders.
    pub csrf: String,
}

impl ConsoleAdmin {
    /// Refuses (403) a form whose CSRF value is not this session's.
    pub fn check(&self, sent: &str) -> Result<(), ConsoleError> {
        if same(&self.csrf, sent) {
            Ok(())
        } else {
            tracing::warn!(admin_id = %self.principal.admin_id, "console form refused: CSRF value mismatch");
            Err(ConsoleError::forbidden(
                "this form is not from your current session; reload the page and try again",
            ))
        }
    }
}

impl FromRequest for ConsoleAdmin {
    type Error = ConsoleError;
    type Future = Ready<Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let resolved = req
            .app_data::<web::Data<dyn AdminSessionResolver>>()
            .zip(cookie(req, SESSION_COOKIE))
            .and_then(|(resolver, token)| {
                resolver
                    .resolve_admin(&token)
                    .map(|principal| ConsoleAdmin {
                        principal,
                        csrf: csrf_for(&token),
                    })
            });
        ready(resolved.ok_or_else(|| {
            if req.method() == Method::GET || req.method() == Method::HEAD {
                ConsoleError::SignedOut
            } else {
                ConsoleError::forbidden("you are signed out; sign in again")
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_is_per_token_and_compared_whole() {
        let a = csrf_for("ga_a");
        assert_eq!(a.len(), 64);
        assert_ne!(a, csrf_for("ga_b"));
        assert!(same(&a, &csrf_for("ga_a")));
        assert!(!same(&a, &a[..63]));
        assert!(!same(&a, ""));
    }

    #[test]
    fn cookie_attributes() {
        let c = CookiePolicy { secure: true }.set_cookie("n", "v", 60);
        assert_eq!(
            c,
            "n=v; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(
            !CookiePolicy { secure: false }
                .set_cookie("n", "v", 0)
                .contains("Secure")
        );
    }

    #[test]
    fn cookie_header_parsing() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Cookie", "a=1; galaxy_console=ga_x; b=2"))
            .to_http_request();
        assert_eq!(cookie(&req, SESSION_COOKIE).as_deref(), Some("ga_x"));
        assert_eq!(cookie(&req, "c"), None);
    }
}
