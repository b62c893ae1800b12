use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::{MalformedId, UserSessionRequired};
use galaxy_core::{ApiError, Problem, UserPrincipal};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{NoSuchGame, NotMember};
use crate::model::{Report, SubmitOrders, TurnInfo};
use crate::service::LobbyService;

type Lobby = web::Data<dyn LobbyService>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportQuery {
    /// Turn number (default: the latest).
    turn: Option<u32>,
}

/// The engine's report for the caller's race.
///
/// Members only, once the game has an engine (`running`, `paused`,
/// `finished`). `turn` defaults to the latest; a turn not generated yet is
/// 404. The body is the engine's, `{turn, race, industry, ships}` for the
/// reference engine.
#[utoipa::path(get, path = "/api/v1/games/{id}/report", tag = "game",
    params(("id" = Uuid, Path, description = "Game id"), ReportQuery),
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The engine's report for the caller's race", body = Report),
        UserSessionRequired, NotMember,
        (status = 400, description = "Malformed id or turn", body = Problem),
        (status = 404, description = "No such game, or a turn the engine does not have", body = Problem),
        (status = 409, description = "`game_not_started`", body = Problem),
        (status = 503, description = "The engine is not reachable", body = Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %id, account_id = %user.account_id))]
pub(crate) async fn report(
    user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let report = lobby.report(*id, user.account_id, query.turn).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Submits the caller's orders for the coming turn; the engine validates them.
///
/// Members only, while the game is `running`. The list replaces the race's
/// earlier orders for the same turn (so a repeat is harmless); a turn
/// applies them and clears them. Reference engine orders:
/// `{"type": "build_ships", "count": N}` with 1 ≤ N ≤ the race's current
/// industry, and `{"type": "raise_industry"}`; at most 16. Anything else is
/// 400 `rejected_by_engine` with the engine's reason, and nothing is stored.
#[utoipa::path(post, path = "/api/v1/games/{id}/orders", tag = "game",
    params(("id" = Uuid, Path, description = "Game id")),
    request_body = SubmitOrders, security(("user_token" = [])),
    responses(
        (status = 202, description = "Accepted by the engine"),
        UserSessionRequired, NotMember, NoSuchGame,
        (status = 400, description = "`validation_failed` (malformed body) or `rejected_by_engine` with the engine's reason", body = Problem),
        (status = 409, description = "`game_not_running`", body = Problem),
        (status = 503, description = "The engine is not reachable", body = Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %id, account_id = %user.account_id))]
pub(crate) async fn submit_orders(
    user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
    body: web::Json<SubmitOrders>,
) -> Result<HttpResponse, ApiError> {
    lobby
        .submit_orders(*id, user.account_id, body.into_inner().orders)
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// The game's turn history, oldest first.
///
/// Members only; empty for a game that never started. `forced` marks a
/// turn an operator generated early (force-next-turn).
#[utoipa::path(get, path = "/api/v1/games/{id}/turns", tag = "game",
    params(("id" = Uuid, Path, description = "Game id")), security(("user_token" = [])),
    responses(
        (status = 200, description = "Generated turns", body = Vec<TurnInfo>),
        UserSessionRequired, MalformedId, NotMember, NoSuchGame,
        (status = 503, description = "The runtime is not reachable", body = Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %id, account_id = %user.account_id))]
pub(crate) async fn turns(
    user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let turns = lobby.turns(*id, user.account_id).await?;
    Ok(HttpResponse::Ok().json(turns))
}
