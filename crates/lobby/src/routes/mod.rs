//! HTTP routes of the lobby: `/api/v1/lobby/*` (players), `/api/v1/games/*`
//! (members), `/api/v1/admin/games` (admins).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use galaxy_core::{ApiError, Page, PageQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::model::GameStatus;
use crate::service::LobbyService;

pub(crate) mod admin;
pub(crate) mod game;
pub(crate) mod lobby;

/// Mounts every lobby route and registers the service as
/// `web::Data<dyn LobbyService>`. Each path is a resource, so a wrong method
/// answers 405.
pub fn configure(cfg: &mut web::ServiceConfig, service: Arc<dyn LobbyService>) {
    cfg.app_data(web::Data::from(service))
        .service(
            web::resource("/api/v1/lobby/games")
                .get(lobby::list_games)
                .post(lobby::create_game),
        )
        .service(web::resource("/api/v1/lobby/games/{id}").get(lobby::get_game))
        .service(web::resource("/api/v1/lobby/games/{id}/join").post(lobby::join_game))
        .service(web::resource("/api/v1/lobby/games/{id}/leave").post(lobby::leave_game))
        .service(web::resource("/api/v1/lobby/games/{id}/start").post(lobby::start_game))
        .service(web::resource("/api/v1/lobby/games/{id}/cancel").post(lobby::cancel_game))
        .service(web::resource("/api/v1/games/{id}/report").get(game::report))
        .service(web::resource("/api/v1/games/{id}/orders").post(game::submit_orders))
        .service(web::resource("/api/v1/games/{id}/turns").get(game::turns))
        .service(web::resource("/api/v1/admin/games").get(admin::list_games));
}

/// Runs a lobby write on its own task so that it completes even when the
/// client disconnects: dropping the request future between the commit and the
/// cache write would leave the cache behind the database.
pub(crate) async fn detached<T, F>(write: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, crate::LobbyError>> + Send + 'static,
{
    use tracing::Instrument;
    let request_id = galaxy_core::current_request_id();
    tokio::spawn(
        galaxy_core::with_request_id(request_id, write).instrument(tracing::Span::current()),
    )
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from)
}

galaxy_core::problem_responses! {
    /// 404 of the routes on one game (`/api/v1/lobby/games/{id}…`, `/api/v1/games/{id}/…`).
    pub(crate) struct NoSuchGame = (404, "No such game");

    /// 403 of the member-only `/api/v1/games/{id}/…` routes.
    pub(crate) struct NotMember = (403, "`not_member`");
}

/// `?status=&page=&page_size=` of the game listings.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only games in this status (empty or absent: every status).
    #[param(value_type = Option<GameStatus>)]
    status: Option<String>,
    /// 1-based page number (default 1, at most 1000000).
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Items per page (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    page_size: Option<u32>,
}

/// One page of games: the players' and the admins' listing answer alike.
pub(crate) fn games_page(
    lobby: &dyn LobbyService,
    query: &ListQuery,
) -> Result<HttpResponse, ApiError> {
    let (status, page) = query.validate()?;
    Ok(HttpResponse::Ok().json(lobby.list_games(status, page)))
}

impl ListQuery {
    pub(crate) fn validate(&self) -> Result<(Option<GameStatus>, Page), ApiError> {
        let page = PageQuery {
            page: self.page,
            page_size: self.page_size,
        }
        .validate()?;
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<GameStatus>().map_err(|_| {
                ApiError::invalid_field(
                    "status",
                    "must be one of open, starting, running, paused, finished, cancelled",
                )
            })?),
        };
        Ok((status, page))
    }
}
