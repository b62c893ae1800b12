//! `/api/v1/admin/auth/*`, `/api/v1/admin/admins`, `/api/v1/admin/users/*`
//! (admin session, except login).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use galaxy_auth::SessionView;
use galaxy_core::openapi_responses::{AdminSessionRequired, BadPage, MalformedId};
use galaxy_core::{AdminPrincipal, ApiError, PageQuery, Paged, Problem, SourceIp, Validator};
use galaxy_geo::CountryCounter;
use galaxy_user::{Account, AccountFilter, AccountStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::service::{AdminService, AdminView};

/// `POST /api/v1/admin/auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminLogin {
    /// 1–64 characters, no control characters.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub username: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// An admin session token (`ga_…`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/admin/auth/password` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(max_length = 1024)]
    pub current_password: String,
    /// At least 12 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub new_password: String,
}

/// `POST /api/v1/admin/admins` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdmin {
    /// 3–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    #[schema(min_length = 3, max_length = 64, pattern = r"^[a-z0-9][a-z0-9._-]*$")]
    pub username: String,
    /// At least 12 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
}

/// `GET /api/v1/admin/users` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminUsersQuery {
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<u32>,
    /// Case-insensitive substring of the email or display name (at most 254
    /// characters, no control characters).
    #[param(max_length = 254, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub q: Option<String>,
    /// `active`, `blocked` or `deleted` (empty: every status).
    #[param(pattern = "^(active|blocked|deleted)?$")]
    pub status: Option<String>,
}

/// An account with what admins inspect.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub account: Account,
    pub country_counters: Vec<CountryCounter>,
    pub active_sessions: Vec<SessionView>,
}

galaxy_core::problem_responses! {
    /// 404 of the `/api/v1/admin/users/{id}…` routes.
    struct NoSuchAccount = (404, "No such account");
}

const MAX_PASSWORD: usize = 1024;

/// Mounts the admin routes with `service` as their app data. The
/// `AdminSessionResolver` the principal extractor reads is app-wide (every module's
/// routes share it) and registered by the binary.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<dyn AdminService>) {
    cfg.app_data(web::Data::from(service))
        .service(web::resource("/api/v1/admin/auth/login").post(login))
        .service(web::resource("/api/v1/admin/auth/logout").post(logout))
        .service(web::resource("/api/v1/admin/auth/password").post(change_password))
        .service(
            web::resource("/api/v1/admin/admins")
                .get(list_admins)
                .post(create_admin),
        )
        .service(web::resource("/api/v1/admin/users").get(list_users))
        .service(web::resource("/api/v1/admin/users/{id}").get(user_detail))
        .service(web::resource("/api/v1/admin/users/{id}/block").post(block_user))
        .service(web::resource("/api/v1/admin/users/{id}/unblock").post(unblock_user))
        .service(web::resource("/api/v1/admin/users/{id}/sessions/revoke").post(revoke_sessions));
}

/// Signs an administrator in.
#[utoipa::path(post, path = "/api/v1/admin/auth/login", tag = "admin",
    request_body = AdminLogin,
    responses(
        (status = 200, description = "Signed in", body = AdminToken),
        (status = 400, description = "Malformed body (`validation_failed`)", body = Problem),
        (status = 401, description = "Wrong username or password (`invalid_credentials`)", body = Problem),
        (status = 429, description = "Too many failed logins from this address or for this username (`rate_limited`, `Retry-After`)", body = Problem),
        (status = 503, description = "Too many password checks at once, or the database is unavailable (`unavailable`, `Retry-After`)", body = Problem)))]
#[tracing::instrument(skip_all)]
async fn login(
    admin: web::Data<dyn AdminService>,
    ip: SourceIp,
    body: web::Json<AdminLogin>,
) -> Result<HttpResponse, ApiError> {
    // `text` (the limits table's username key) refuses NUL: control
    // characters are refused here, before anything is stored.
    Validator::new()
        .text("username", &body.username, 1, 64)
        .check(
            (1..=MAX_PASSWORD).contains(&body.password.chars().count()),
            "password",
            format!("must be 1 to {MAX_PASSWORD} characters"),
        )
        .finish()?;
    let (token, expires_at) = admin.login(&body.username, &body.password, ip.0).await?;
    Ok(HttpResponse::Ok().json(AdminToken { token, expires_at }))
}

/// Ends the admin session the request is made with.
#[utoipa::path(post, path = "/api/v1/admin/auth/logout", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Signed out"),
        AdminSessionRequired))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn logout(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
) -> Result<HttpResponse, ApiError> {
    admin.logout(&who).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotates the caller's password and revokes their other sessions.
#[utoipa::path(post, path = "/api/v1/admin/auth/password", tag = "admin",
    security(("admin_token" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; other sessions revoked"),
        AdminSessionRequired,
        (status = 400, description = "New password too short or too long (`validation_failed`)", body = Problem),
        (status = 403, description = "The current password is wrong (`wrong_password`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn change_password(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    Validator::new()
        .check(
            (12..=MAX_PASSWORD).contains(&body.new_password.chars().count()),
            "new_password",
            format!("must be 12 to {MAX_PASSWORD} characters"),
        )
        .check(
            body.current_password.chars().count() <= MAX_PASSWORD,
            "current_password",
            "too long",
        )
        .finish()?;
    admin
        .change_password(&who, &body.current_password, &body.new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every administrator, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/admins", tag = "admin",
    security(("admin_token" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of admins", body = Paged<AdminView>),
        AdminSessionRequired, BadPage))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn list_admins(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().validate()?;
    Ok(HttpResponse::Ok().json(admin.list_admins(page)))
}

/// Creates an administrator.
#[utoipa::path(post, path = "/api/v1/admin/admins", tag = "admin",
    security(("admin_token" = [])),
    request_body = NewAdmin,
    responses(
        (status = 201, description = "Created", body = AdminView),
        AdminSessionRequired,
        (status = 400, description = "Bad username or password (`validation_failed`)", body = Problem),
        (status = 409, description = "The username is taken (`username_taken`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn create_admin(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    body: web::Json<NewAdmin>,
) -> Result<HttpResponse, ApiError> {
    let u = body.username.as_str();
    Validator::new()
        .check(
            (3..=64).contains(&u.len())
                && u.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && u.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                }),
            "username",
            "must be 3 to 64 of a-z 0-9 . _ - starting with a letter or digit",
        )
        .check(
            (12..=MAX_PASSWORD).contains(&body.password.chars().count()),
            "password",
            format!("must be 12 to {MAX_PASSWORD} characters"),
        )
        .finish()?;
    let created = admin.create_admin(u, &body.password).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Accounts, newest first, filtered by `q` and `status`.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    security(("admin_token" = [])),
    params(AdminUsersQuery),
    responses(
        (status = 200, description = "A page of accounts", body = Paged<Account>),
        AdminSessionRequired,
        (status = 400, description = "Bad query (`validation_failed`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn list_users(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    query: web::Query<AdminUsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(AccountStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_field("status", "must be one of active, blocked, deleted")
        })?),
    };
    let text = q.q.filter(|s| !s.is_empty());
    if let Some(t) = &text {
        Validator::new().text("q", t, 1, 254).finish()?;
    }
    let filter = AccountFilter { q: text, status };
    Ok(HttpResponse::Ok().json(admin.list_users(&filter, page)))
}

/// One account with its country counters and live sessions.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account", body = UserDetail),
        AdminSessionRequired, MalformedId, NoSuchAccount))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn user_detail(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (account, country_counters, active_sessions) = admin.user_detail(id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(UserDetail {
        account,
        country_counters,
        active_sessions,
    }))
}

/// Blocks an account and revokes its sessions.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/block", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The blocked account", body = Account),
        AdminSessionRequired, MalformedId, NoSuchAccount,
        (status = 409, description = "The account is deleted (`account_deleted`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn block_user(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(admin.set_blocked(id.into_inner(), true).await?))
}

/// Unblocks an account.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/unblock", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The active account", body = Account),
        AdminSessionRequired, MalformedId, NoSuchAccount,
        (status = 409, description = "The account is deleted (`account_deleted`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn unblock_user(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(admin.set_blocked(id.into_inner(), false).await?))
}

/// Revokes every session of an account.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/sessions/revoke", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Revoked"),
        AdminSessionRequired, MalformedId, NoSuchAccount))]
#[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
async fn revoke_sessions(
    admin: web::Data<dyn AdminService>,
    who: AdminPrincipal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    admin.revoke_user_sessions(id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(OpenApi)]
#[openapi(
    paths(login, logout, change_password, list_admins, create_admin, list_users, user_detail,
          block_user, unblock_user, revoke_sessions),
    components(schemas(AdminLogin, AdminToken, PasswordChange, NewAdmin, AdminView, UserDetail,
                       CountryCounter, SessionView, Account, AccountStatus)),
    tags((name = "admin", description = "Administrators and the admin surface over users"))
)]
struct AdminDoc;

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    AdminDoc::openapi()
}
