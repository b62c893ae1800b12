use utoipa::OpenApi;

use crate::model::{
    BuildShips, CreateGame, GameStatus, GameView, JoinGame, Member, MemberRole, Order,
    RaiseIndustry, Report, SubmitOrders, TurnInfo,
};
use crate::routes::{admin, game, lobby};

#[derive(OpenApi)]
#[openapi(
    paths(
        lobby::list_games, lobby::get_game, lobby::create_game, lobby::join_game,
        lobby::leave_game, lobby::start_game, lobby::cancel_game,
        game::report, game::submit_orders, game::turns,
        admin::list_games,
    ),
    components(schemas(
        GameView, GameStatus, Member, MemberRole, CreateGame, JoinGame, SubmitOrders, TurnInfo,
        Order, BuildShips, RaiseIndustry, Report,
    )),
    tags(
        (name = "lobby", description = "Games and memberships before and around the start"),
        (name = "game", description = "Playing: reports, orders and turns, forwarded to the game's engine (members only)"),
    )
)]
struct LobbyDoc;

/// The lobby's part of the backend's OpenAPI document (merged by the binary).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = LobbyDoc::openapi();
    crate::schema_rules::state(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn documents_every_route_with_its_schemas() {
        let doc = super::openapi();
        for path in [
            "/api/v1/lobby/games",
            "/api/v1/lobby/games/{id}",
            "/api/v1/lobby/games/{id}/join",
            "/api/v1/lobby/games/{id}/leave",
            "/api/v1/lobby/games/{id}/start",
            "/api/v1/lobby/games/{id}/cancel",
            "/api/v1/games/{id}/report",
            "/api/v1/games/{id}/orders",
            "/api/v1/games/{id}/turns",
            "/api/v1/admin/games",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
        let schemas = &doc.components.as_ref().unwrap().schemas;
        for s in [
            "GameView",
            "CreateGame",
            "JoinGame",
            "SubmitOrders",
            "TurnInfo",
            "Member",
            "Order",
            "BuildShips",
            "RaiseIndustry",
            "Report",
        ] {
            assert!(schemas.contains_key(s), "{s} missing");
        }
        let json = doc.to_json().unwrap();
        assert!(
            json.contains("race_name_taken"),
            "conflict codes are documented"
        );
    }
}
