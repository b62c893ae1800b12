use actix_web::{HttpResponse, web};
use galaxy_core::openapi_responses::{MalformedId, UserSessionRequired};
use galaxy_core::{ApiError, Paged, Problem, UserPrincipal};
use uuid::Uuid;

use super::{ListQuery, NoSuchGame, detached, games_page};
use crate::model::{CreateGame, GameView, JoinGame};
use crate::service::LobbyService;

type Lobby = web::Data<dyn LobbyService>;

/// Lists games, newest first.
#[utoipa::path(get, path = "/api/v1/lobby/games", tag = "lobby",
    params(ListQuery), security(("user_token" = [])),
    responses(
        (status = 200, description = "One page of games", body = Paged<GameView>),
        UserSessionRequired,
        (status = 400, description = "Bad status or page", body = Problem)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_games(
    _user: UserPrincipal,
    lobby: Lobby,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    games_page(&**lobby, &query)
}

/// One game with its current members.
#[utoipa::path(get, path = "/api/v1/lobby/games/{id}", tag = "lobby",
    params(("id" = Uuid, Path, description = "Game id")), security(("user_token" = [])),
    responses(
        (status = 200, description = "The game", body = GameView),
        UserSessionRequired, MalformedId, NoSuchGame))]
#[tracing::instrument(skip_all, fields(game_id = %id))]
pub(crate) async fn get_game(
    _user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let game = lobby
        .game_view(*id)
        .ok_or_else(|| ApiError::not_found("no such game"))?;
    Ok(HttpResponse::Ok().json(game))
}

/// Creates an `open` game; the caller becomes its owner member.
///
/// Any active account may create one. `engine_version` defaults to the
/// newest `active` version; `settings` (a JSON object) is handed to the
/// engine as it is. Players join while it is `open`; the owner starts or
/// cancels it. Not idempotent: each call creates a game.
#[utoipa::path(post, path = "/api/v1/lobby/games", tag = "lobby",
    request_body = CreateGame, security(("user_token" = [])),
    responses(
        (status = 201, description = "Created", body = GameView),
        UserSessionRequired,
        (status = 400, description = "`validation_failed` (field errors)", body = Problem),
        (status = 403, description = "`account_inactive`", body = Problem),
        (status = 409, description = "`engine_version_unavailable` (the version named is unknown, deprecated or disabled) or `no_active_engine_version` (none to default to)", body = Problem)))]
#[tracing::instrument(skip_all, fields(account_id = %user.account_id))]
pub(crate) async fn create_game(
    user: UserPrincipal,
    lobby: Lobby,
    body: web::Json<CreateGame>,
) -> Result<HttpResponse, ApiError> {
    let lobby = lobby.into_inner();
    let game = detached(async move { lobby.create_game(user.account_id, body.into_inner()).await })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/lobby/games/{}", game.id),
        ))
        .json(game))
}

/// Joins an `open` game with a race name.
///
/// Any active account that is not a member yet, while the game is `open`
/// and below `max_players`; race names are unique in a game
/// (case-insensitively). Members get `lobby.member_joined`.
#[utoipa::path(post, path = "/api/v1/lobby/games/{id}/join", tag = "lobby",
    params(("id" = Uuid, Path, description = "Game id")),
    request_body = JoinGame, security(("user_token" = [])),
    responses(
        (status = 200, description = "Joined; the game", body = GameView),
        UserSessionRequired, NoSuchGame,
        (status = 400, description = "`validation_failed`", body = Problem),
        (status = 403, description = "`account_inactive`", body = Problem),
        (status = 409, description = "`game_not_open`, `already_member`, `game_full` or `race_name_taken`", body = Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %id, account_id = %user.account_id))]
pub(crate) async fn join_game(
    user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
    body: web::Json<JoinGame>,
) -> Result<HttpResponse, ApiError> {
    let (lobby, id) = (lobby.into_inner(), id.into_inner());
    let game = detached(async move {
        lobby
            .join_game(id, user.account_id, body.into_inner())
            .await
    })
    .await?;
    Ok(HttpResponse::Ok().json(game))
}

/// Leaves an `open` game (not for its owner, who cancels instead).
///
/// Members only, while the game is `open`; once it has started, members stay.
#[utoipa::path(post, path = "/api/v1/lobby/games/{id}/leave", tag = "lobby",
    params(("id" = Uuid, Path, description = "Game id")), security(("user_token" = [])),
    responses(
        (status = 204, description = "Left"),
        UserSessionRequired, MalformedId, NoSuchGame,
        (status = 409, description = "`not_member`, `owner_cannot_leave` or `game_not_open`", body = Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %id, account_id = %user.account_id))]
pub(crate) async fn leave_game(
    user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (lobby, id) = (lobby.into_inner(), id.into_inner());
    detached(async move { lobby.leave_game(id, user.account_id).await }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Starts the game: `open` → `starting`; `running` once its engine is healthy.
///
/// The owner only, with at least `min_players` members. The runtime
/// starts the engine in the background: the game reads `starting` until
/// the engine answers healthy, then `running` (members get
/// `lobby.game_started`); if the engine cannot be started the game goes
/// back to `open`, so the owner can start again or cancel.
#[utoipa::path(post, path = "/api/v1/lobby/games/{id}/start", tag = "lobby",
    params(("id" = Uuid, Path, description = "Game id")), security(("user_token" = [])),
    responses(
        (status = 202, description = "Starting; the game", body = GameView),
        UserSessionRequired, MalformedId, NoSuchGame,
        (status = 403, description = "`not_owner`", body = Problem),
        (status = 409, description = "`game_not_open`, `not_enough_players`, or `start_refused` (the runtime will not start it, with the reason; the game stays open)", body = Problem),
        (status = 503, description = "The runtime cannot take the start now; the game stays open", body = Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %id, account_id = %user.account_id))]
pub(crate) async fn start_game(
    user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (lobby, id) = (lobby.into_inner(), id.into_inner());
    let game = detached(async move { lobby.start_game(id, user.account_id).await }).await?;
    Ok(HttpResponse::Accepted().json(game))
}

/// Cancels an `open` game.
///
/// The owner only, while the game is `open`: `open` → `cancelled` (final).
#[utoipa::path(post, path = "/api/v1/lobby/games/{id}/cancel", tag = "lobby",
    params(("id" = Uuid, Path, description = "Game id")), security(("user_token" = [])),
    responses(
        (status = 200, description = "Cancelled; the game", body = GameView),
        UserSessionRequired, MalformedId, NoSuchGame,
        (status = 403, description = "`not_owner`", body = Problem),
        (status = 409, description = "`game_not_open`", body = Problem)))]
#[tracing::instrument(skip_all, fields(game_id = %id, account_id = %user.account_id))]
pub(crate) async fn cancel_game(
    user: UserPrincipal,
    lobby: Lobby,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (lobby, id) = (lobby.into_inner(), id.into_inner());
    let game = detached(async move { lobby.cancel_game(id, user.account_id).await }).await?;
    Ok(HttpResponse::Ok().json(game))
}
