use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::AdminSessionRequired;
use galaxy_core::{AdminPrincipal, ApiError, Paged, Problem};

use super::{ListQuery, games_page};
use crate::model::GameView;
use crate::service::LobbyService;

/// Every game (all statuses unless filtered), newest first.
#[utoipa::path(get, path = "/api/v1/admin/games", tag = "admin",
    params(ListQuery), security(("admin_token" = [])),
    responses(
        (status = 200, description = "One page of games", body = Paged<GameView>),
        AdminSessionRequired,
        (status = 400, description = "Bad status or page", body = Problem)))]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
pub(crate) async fn list_games(
    admin: AdminPrincipal,
    lobby: web::Data<dyn LobbyService>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    games_page(&**lobby, &query)
}
