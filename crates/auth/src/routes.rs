//! `/api/v1/auth/*`: the email-code flow (public) and own sessions.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use galaxy_core::openapi_responses::{MalformedId, UserSessionRequired};
use galaxy_core::{ApiError, Problem, SourceIp, UserPrincipal};
use galaxy_user::{Account, normalize_email};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::service::AuthService;
use crate::session::SessionView;

/// `POST /api/v1/auth/email-code` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// An address (`local@domain.tld`, at most 254 characters); surrounding
    /// whitespace is ignored and ASCII letters are lower-cased.
    pub email: String,
}

/// The answer to a code request, the same whether or not the address has an
/// account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChallengeCreated {
    pub challenge_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/auth/email-code/verify` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeVerify {
    pub challenge_id: Uuid,
    /// The 6-digit code from the mail.
    #[schema(pattern = "^[0-9]{6}$", min_length = 6, max_length = 6)]
    pub code: String,
}

/// A successful sign-in.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedIn {
    /// The user bearer token (`gu_…`). Shown once; only its hash is stored.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account: Account,
    /// The account was created by this sign-in.
    pub created: bool,
}

/// One of the caller's sessions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OwnSession {
    #[serde(flatten)]
    pub session: SessionView,
    /// The session this request was made with.
    pub current: bool,
}

/// Mounts the auth routes with `service` as their app data. The
/// `UserSessionResolver` the principal extractor reads is app-wide (every module's
/// routes share it) and registered by the binary.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<dyn AuthService>) {
    cfg.app_data(web::Data::from(service))
        .service(web::resource("/api/v1/auth/email-code").post(request_code))
        .service(web::resource("/api/v1/auth/email-code/verify").post(verify_code))
        .service(web::resource("/api/v1/auth/logout").post(logout))
        .service(web::resource("/api/v1/auth/sessions").get(list_sessions))
        .service(web::resource("/api/v1/auth/sessions/{id}").delete(revoke_session));
}

/// Sends a 6-digit sign-in code to `email`.
#[utoipa::path(post, path = "/api/v1/auth/email-code", tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 202, description = "A code was mailed (same answer whether or not the address has an account)", body = ChallengeCreated),
        (status = 400, description = "Malformed email or body (`validation_failed`)", body = Problem),
        (status = 429, description = "Too many code requests for this address or source IP (`rate_limited`, `Retry-After`)", body = Problem)))]
#[tracing::instrument(skip_all)]
async fn request_code(
    auth: web::Data<dyn AuthService>,
    ip: SourceIp,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = normalize_email(&body.email)?;
    let (challenge_id, expires_at) = auth.request_code(&email, ip.0).await?;
    Ok(HttpResponse::Accepted().json(ChallengeCreated {
        challenge_id,
        expires_at,
    }))
}

/// Exchanges a code for a session; creates the account at its first sign-in.
#[utoipa::path(post, path = "/api/v1/auth/email-code/verify", tag = "auth",
    request_body = CodeVerify,
    responses(
        (status = 200, description = "Signed in", body = SignedIn),
        (status = 400, description = "Malformed body or code (`validation_failed`)", body = Problem),
        (status = 401, description = "Wrong code (`invalid_code`); unknown, expired, used or dead challenge (`challenge_invalid`)", body = Problem),
        (status = 403, description = "The account is blocked or deleted", body = Problem)))]
#[tracing::instrument(skip_all)]
async fn verify_code(
    auth: web::Data<dyn AuthService>,
    ip: SourceIp,
    req: HttpRequest,
    body: web::Json<CodeVerify>,
) -> Result<HttpResponse, ApiError> {
    let code = body.code.as_str();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_field("code", "must be 6 digits"));
    }
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let s = auth
        .verify(body.challenge_id, code, ip.0, user_agent)
        .await?;
    Ok(HttpResponse::Ok().json(SignedIn {
        token: s.token,
        expires_at: s.expires_at,
        account: s.account,
        created: s.created,
    }))
}

/// Ends the session the request is made with.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("user_token" = [])),
    responses(
        (status = 204, description = "Signed out"),
        UserSessionRequired))]
#[tracing::instrument(skip_all, fields(account_id = %who.account_id))]
async fn logout(
    auth: web::Data<dyn AuthService>,
    who: UserPrincipal,
) -> Result<HttpResponse, ApiError> {
    auth.revoke_session(who.account_id, who.session_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth",
    security(("user_token" = [])),
    responses(
        (status = 200, description = "Live sessions", body = [OwnSession]),
        UserSessionRequired))]
#[tracing::instrument(skip_all, fields(account_id = %who.account_id))]
async fn list_sessions(
    auth: web::Data<dyn AuthService>,
    who: UserPrincipal,
) -> Result<HttpResponse, ApiError> {
    let items: Vec<OwnSession> = auth
        .sessions_of(who.account_id)
        .into_iter()
        .map(|session| OwnSession {
            current: session.id == who.session_id,
            session,
        })
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

/// Revokes one of the caller's sessions. Another user's session is 404.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth",
    security(("user_token" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        UserSessionRequired, MalformedId,
        (status = 404, description = "No such session of the caller", body = Problem)))]
#[tracing::instrument(skip_all, fields(account_id = %who.account_id))]
async fn revoke_session(
    auth: web::Data<dyn AuthService>,
    who: UserPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.revoke_session(who.account_id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(OpenApi)]
#[openapi(
    paths(request_code, verify_code, logout, list_sessions, revoke_session),
    components(schemas(CodeRequest, ChallengeCreated, CodeVerify, SignedIn, OwnSession, SessionView)),
    tags((name = "auth", description = "Email-code sign-in and user sessions"))
)]
struct AuthDoc;

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = AuthDoc::openapi();
    // The address rule comes from the code that enforces it.
    if let Some(email) = galaxy_core::schema_rules::property_mut(&mut doc, "CodeRequest", "email") {
        email.max_length = Some(galaxy_user::EMAIL_MAX);
        email.pattern = Some(galaxy_user::EMAIL_PATTERN.to_owned());
    }
    doc
}
