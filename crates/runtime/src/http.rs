//! Admin routes: engine versions and the runtime control plane.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::{AdminSessionRequired, BadPage, MalformedId};
use galaxy_core::{AdminPrincipal, ApiError, PageQuery, Paged, Validator};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::model::{Actor, EngineVersion, EngineVersionStatus, Operation, RuntimeRecord};
use crate::service::RuntimeService;

type Service = web::Data<dyn RuntimeService>;

/// Mounts the admin runtime and engine-version routes; registers the
/// service as app data for them.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<dyn RuntimeService>) {
    cfg.app_data(web::Data::from(service))
        .service(
            web::resource("/api/v1/admin/engine-versions")
                .get(list_versions)
                .post(create_version),
        )
        .service(web::resource("/api/v1/admin/engine-versions/{version}").patch(patch_version))
        .service(web::resource("/api/v1/admin/runtime").get(list_records))
        .service(web::resource("/api/v1/admin/runtime/{game_id}").get(get_record))
        .service(web::resource("/api/v1/admin/runtime/{game_id}/start").post(start))
        .service(web::resource("/api/v1/admin/runtime/{game_id}/stop").post(stop))
        .service(
            web::resource("/api/v1/admin/runtime/{game_id}/force-next-turn").post(force_next_turn),
        )
        .service(web::resource("/api/v1/admin/runtime/{game_id}/patch").post(patch))
        .service(web::resource("/api/v1/admin/runtime/{game_id}/operations").get(operations));
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_versions, create_version, patch_version, list_records, get_record, start, stop,
        force_next_turn, patch, operations
    ),
    components(schemas(
        EngineVersion, EngineVersionStatus, RuntimeRecord, Operation, NewEngineVersion,
        VersionStatusChange, PatchRequest, OperationAccepted, crate::model::DesiredState,
        crate::model::ObservedState, crate::model::OperationKind, crate::model::Outcome
    )),
    tags((name = "admin-runtime", description = "Engine versions and engine containers"))
)]
struct Doc;

/// The module's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEngineVersion {
    /// 1–64 characters of `[A-Za-z0-9._-]`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub version: String,
    /// A Docker image reference, e.g. `galaxy/game:1.2.0`: 1–255 printable
    /// ASCII characters, no spaces.
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub image: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionStatusChange {
    pub status: EngineVersionStatus,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    /// An engine version (1–64 characters of `[A-Za-z0-9._-]`).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub engine_version: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperationAccepted {
    pub operation_id: Uuid,
}

fn valid_version(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_image(i: &str) -> bool {
    (1..=255).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_graphic())
}

/// The requested page of an in-memory, already ordered list.
fn page_of<T: Clone + Serialize>(q: PageQuery, all: &[T]) -> Result<HttpResponse, ApiError> {
    let page = q.validate()?;
    Ok(HttpResponse::Ok().json(Paged::new(
        page.slice(all),
        page,
        i64::try_from(all.len()).unwrap_or(i64::MAX),
    )))
}

fn no_record() -> ApiError {
    ApiError::not_found("no runtime record for this game")
}

fn accepted(operation_id: Uuid) -> HttpResponse {
    HttpResponse::Accepted().json(OperationAccepted { operation_id })
}

/// Engine versions, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/engine-versions", tag = "admin-runtime",
    params(PageQuery), security(("admin_token" = [])),
    responses((status = 200, body = Paged<EngineVersion>), AdminSessionRequired, BadPage))]
async fn list_versions(
    _admin: AdminPrincipal,
    svc: Service,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    page_of(q.into_inner(), &svc.versions())
}

/// Registers an engine version (`active`) under an image reference.
#[utoipa::path(post, path = "/api/v1/admin/engine-versions", tag = "admin-runtime",
    request_body = NewEngineVersion, security(("admin_token" = [])),
    responses((status = 201, body = EngineVersion), AdminSessionRequired,
        (status = 400, body = galaxy_core::Problem), (status = 409, body = galaxy_core::Problem)))]
#[tracing::instrument(skip_all, fields(version = %body.version))]
async fn create_version(
    _admin: AdminPrincipal,
    svc: Service,
    body: web::Json<NewEngineVersion>,
) -> Result<HttpResponse, ApiError> {
    Validator::new()
        .check(
            valid_version(&body.version),
            "version",
            "must be 1-64 characters of letters, digits, '.', '_' or '-'",
        )
        .check(
            valid_image(&body.image),
            "image",
            "must be 1-255 characters without spaces",
        )
        .finish()?;
    let created = svc.create_version(&body.version, &body.image).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Changes an engine version's status (e.g. retires it from new games).
#[utoipa::path(patch, path = "/api/v1/admin/engine-versions/{version}", tag = "admin-runtime",
    request_body = VersionStatusChange, security(("admin_token" = [])),
    params(("version" = String, Path)),
    responses((status = 200, body = EngineVersion), AdminSessionRequired,
        (status = 400, body = galaxy_core::Problem), (status = 404, body = galaxy_core::Problem)))]
#[tracing::instrument(skip_all, fields(version = %version))]
async fn patch_version(
    _admin: AdminPrincipal,
    svc: Service,
    version: web::Path<String>,
    body: web::Json<VersionStatusChange>,
) -> Result<HttpResponse, ApiError> {
    let updated = svc.set_version_status(&version, body.status).await?;
    Ok(HttpResponse::Ok().json(updated))
}

/// Every runtime record, by game id.
#[utoipa::path(get, path = "/api/v1/admin/runtime", tag = "admin-runtime",
    params(PageQuery), security(("admin_token" = [])),
    responses((status = 200, body = Paged<RuntimeRecord>), AdminSessionRequired, BadPage))]
async fn list_records(
    _admin: AdminPrincipal,
    svc: Service,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    page_of(q.into_inner(), &svc.records())
}

/// One game's runtime record: desired and observed state, container, turn schedule.
#[utoipa::path(get, path = "/api/v1/admin/runtime/{game_id}", tag = "admin-runtime",
    params(("game_id" = Uuid, Path)), security(("admin_token" = [])),
    responses((status = 200, body = RuntimeRecord), AdminSessionRequired, MalformedId,
        (status = 404, body = galaxy_core::Problem)))]
async fn get_record(
    _admin: AdminPrincipal,
    svc: Service,
    game_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let record = svc.record(*game_id).ok_or_else(no_record)?;
    Ok(HttpResponse::Ok().json(record))
}

/// The admin's operations on one game's engine that take nothing but the
/// game: each starts the operation (logged, attributed to the admin) and
/// answers 202 with its id. One handler per row: `handler = path =>` the
/// [`RuntimeService`] method.
macro_rules! operation_routes {
    ($($(#[$doc:meta])* $handler:ident = $path:literal => $method:ident;)+) => {$(
        $(#[$doc])*
        #[utoipa::path(post, path = $path, tag = "admin-runtime",
            params(("game_id" = Uuid, Path)), security(("admin_token" = [])),
            responses((status = 202, body = OperationAccepted), AdminSessionRequired, MalformedId,
                (status = 404, body = galaxy_core::Problem), (status = 409, body = galaxy_core::Problem)))]
        #[tracing::instrument(skip_all, fields(game_id = %game_id))]
        async fn $handler(
            admin: AdminPrincipal,
            svc: Service,
            game_id: web::Path<Uuid>,
        ) -> Result<HttpResponse, ApiError> {
            Ok(accepted(svc.$method(*game_id, Actor::Admin(admin.admin_id)).await?))
        }
    )+};
}

operation_routes! {
    /// Starts a stopped or failed game's engine again with its stored start config.
    start = "/api/v1/admin/runtime/{game_id}/start" => restart_game;
    /// Stops a game's engine container (its volume is kept).
    stop = "/api/v1/admin/runtime/{game_id}/stop" => stop_game;
    /// Sets the one-shot flag: the next scheduler tick generates a turn.
    force_next_turn = "/api/v1/admin/runtime/{game_id}/force-next-turn" => force_next_turn;
}

/// Re-creates the engine on another engine version's image (same volume).
#[utoipa::path(post, path = "/api/v1/admin/runtime/{game_id}/patch", tag = "admin-runtime",
    params(("game_id" = Uuid, Path)), request_body = PatchRequest, security(("admin_token" = [])),
    responses((status = 202, body = OperationAccepted), AdminSessionRequired,
        (status = 400, body = galaxy_core::Problem), (status = 404, body = galaxy_core::Problem),
        (status = 409, body = galaxy_core::Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %game_id))]
async fn patch(
    admin: AdminPrincipal,
    svc: Service,
    game_id: web::Path<Uuid>,
    body: web::Json<PatchRequest>,
) -> Result<HttpResponse, ApiError> {
    if !valid_version(&body.engine_version) {
        return Err(ApiError::invalid_field(
            "engine_version",
            "not a valid version",
        ));
    }
    if svc.version(&body.engine_version).is_none() {
        // Depends on what is registered, not on the request's shape.
        return Err(ApiError::conflict(
            "unknown_engine_version",
            "no engine version of this name is registered",
        ));
    }
    Ok(accepted(
        svc.patch_game(*game_id, &body.engine_version, Actor::Admin(admin.admin_id))
            .await?,
    ))
}

/// The game's operation log, newest first.
#[utoipa::path(get, path = "/api/v1/admin/runtime/{game_id}/operations", tag = "admin-runtime",
    params(("game_id" = Uuid, Path), PageQuery), security(("admin_token" = [])),
    responses((status = 200, body = Paged<Operation>), AdminSessionRequired,
        (status = 400, body = galaxy_core::Problem), (status = 404, body = galaxy_core::Problem)))]
async fn operations(
    _admin: AdminPrincipal,
    svc: Service,
    game_id: web::Path<Uuid>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = q.into_inner().validate()?;
    if svc.record(*game_id).is_none() {
        return Err(no_record());
    }
    Ok(HttpResponse::Ok().json(svc.operations(*game_id, page).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_and_image_rules() {
        assert!(super::valid_version("1.2.0-rc_1"));
        assert!(!super::valid_version(""));
        assert!(!super::valid_version("a b"));
        assert!(!super::valid_version(&"x".repeat(65)));
        assert!(super::valid_image("galaxy/game:integration"));
        assert!(!super::valid_image("galaxy/game: x"));
    }

    #[test]
    fn openapi_covers_every_route() {
        let doc = super::openapi();
        for path in [
            "/api/v1/admin/engine-versions",
            "/api/v1/admin/engine-versions/{version}",
            "/api/v1/admin/runtime",
            "/api/v1/admin/runtime/{game_id}",
            "/api/v1/admin/runtime/{game_id}/start",
            "/api/v1/admin/runtime/{game_id}/stop",
            "/api/v1/admin/runtime/{game_id}/force-next-turn",
            "/api/v1/admin/runtime/{game_id}/patch",
            "/api/v1/admin/runtime/{game_id}/operations",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
    }
}
