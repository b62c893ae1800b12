//! Who is calling. Routes declare the principal they need as an extractor;
//! the binary registers the resolvers (implemented by the auth and admin
//! modules, answering from their caches) as app data:
//! `web::Data::<dyn UserSessionResolver>::from(arc)`.
//!
//! User and admin tokens are resolved by different resolvers against
//! different tables, so one kind can never authenticate as the other.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::source_ip::source_ip;

/// An authenticated player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPrincipal {
    pub account_id: Uuid,
    pub session_id: Uuid,
}

/// An authenticated administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    pub admin_id: Uuid,
    pub session_id: Uuid,
    pub username: String,
}

/// Resolves a user bearer token. Called on every authenticated request, so it
/// must answer from memory. `source_ip` lets the implementation count the
/// request's country without making the request wait for it.
pub trait UserSessionResolver: Send + Sync + 'static {
    fn resolve_user(&self, token: &str, source_ip: Option<IpAddr>) -> Option<UserPrincipal>;
}

/// Resolves an admin bearer token, from memory.
pub trait AdminSessionResolver: Send + Sync + 'static {
    fn resolve_admin(&self, token: &str) -> Option<AdminPrincipal>;
}

/// The token of an `Authorization: Bearer <token>` header, if well-formed.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn missing_resolver(kind: &str) -> ApiError {
    ApiError::internal(format!("no {kind} session resolver registered"))
}

impl FromRequest for UserPrincipal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let resolver = req
                .app_data::<web::Data<dyn UserSessionResolver>>()
                .ok_or_else(|| missing_resolver("user"))?;
            let token = bearer_token(req)
                .ok_or_else(|| ApiError::unauthorized("a user bearer token is required"))?;
            resolver
                .resolve_user(token, source_ip(req))
                .ok_or_else(|| ApiError::unauthorized("the session is invalid or has expired"))
        })())
    }
}

impl FromRequest for AdminPrincipal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let resolver = req
                .app_data::<web::Data<dyn AdminSessionResolver>>()
                .ok_or_else(|| missing_resolver("admin"))?;
            let token = bearer_token(req)
                .ok_or_else(|| ApiError::unauthorized("an admin bearer token is required"))?;
            resolver.resolve_admin(token).ok_or_else(|| {
                ApiError::unauthorized("the admin session is invalid or has expired")
            })
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_parsing() {
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req), Some("abc"));
        let req = TestRequest::default()
            .insert_header(("Authorization", "Basic abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer "))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
    }
}
