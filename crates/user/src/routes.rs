//! `/api/v1/user/me` (user session).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::UserSessionRequired;
use galaxy_core::{ApiError, Problem, UserPrincipal};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::model::{Account, AccountStatus};
use crate::service::UserService;
use crate::validate::validate_display_name;

/// `PATCH /api/v1/user/me` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisplayNameUpdate {
    /// 1–32 characters: no control or invisible characters, no surrounding
    /// whitespace (the name rule, `galaxy_core::name_problem`; its length
    /// and pattern are added to the document by [`openapi`]).
    pub display_name: String,
}

/// Mounts the user routes with `service` as their app data. The
/// `UserSessionResolver` the principal extractor reads is app-wide (every module's
/// routes share it) and registered by the binary.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<dyn UserService>) {
    cfg.app_data(web::Data::from(service)).service(
        web::resource("/api/v1/user/me")
            .get(get_me)
            .patch(patch_me)
            .delete(delete_me),
    );
}

/// A session whose account is no longer active answers as an expired one.
fn session_gone() -> ApiError {
    ApiError::unauthorized("the session is invalid or has expired")
}

fn current(users: &dyn UserService, who: &UserPrincipal) -> Result<Account, ApiError> {
    users
        .account(who.account_id)
        .filter(|a| a.status == AccountStatus::Active)
        .ok_or_else(session_gone)
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/user/me", tag = "user",
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The caller's account", body = Account),
        UserSessionRequired))]
// No span of its own: the hottest read logs nothing, and the request span
// already carries its route and status (a second span per request cost
// about a tenth of its throughput in the auth bench).
async fn get_me(
    users: web::Data<dyn UserService>,
    who: UserPrincipal,
) -> Result<HttpResponse, ApiError> {
    match users.account_json(who.account_id) {
        Some((AccountStatus::Active, json)) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(json)),
        _ => Err(session_gone()),
    }
}

/// Changes the caller's display name.
#[utoipa::path(patch, path = "/api/v1/user/me", tag = "user",
    security(("user_token" = [])),
    request_body = DisplayNameUpdate,
    responses(
        (status = 200, description = "The updated account", body = Account),
        UserSessionRequired,
        (status = 400, description = "Invalid display name or body (`validation_failed`)", body = Problem)))]
#[tracing::instrument(skip_all, fields(account_id = %who.account_id))]
async fn patch_me(
    users: web::Data<dyn UserService>,
    who: UserPrincipal,
    body: web::Json<DisplayNameUpdate>,
) -> Result<HttpResponse, ApiError> {
    current(users.get_ref(), &who)?;
    validate_display_name(&body.display_name)?;
    let account = users
        .set_display_name(who.account_id, &body.display_name)
        .await?;
    Ok(HttpResponse::Ok().json(account))
}

/// Deletes the caller's account: status `deleted`, every session revoked,
/// pending notifications skipped, open-game memberships left. Rows are kept.
#[utoipa::path(delete, path = "/api/v1/user/me", tag = "user",
    security(("user_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        UserSessionRequired))]
#[tracing::instrument(skip_all, fields(account_id = %who.account_id))]
async fn delete_me(
    users: web::Data<dyn UserService>,
    who: UserPrincipal,
) -> Result<HttpResponse, ApiError> {
    current(users.get_ref(), &who)?;
    users.delete(who.account_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(OpenApi)]
#[openapi(
    paths(get_me, patch_me, delete_me),
    components(schemas(Account, AccountStatus, DisplayNameUpdate)),
    tags((name = "user", description = "The signed-in player's account"))
)]
struct UserDoc;

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = UserDoc::openapi();
    let stated = galaxy_core::schema_rules::name_rule(
        &mut doc,
        "DisplayNameUpdate",
        "display_name",
        crate::validate::DISPLAY_NAME_MAX,
        "",
    );
    debug_assert!(stated, "DisplayNameUpdate.display_name is documented");
    doc
}
