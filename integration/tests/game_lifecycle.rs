//! Container scenario: two players, through the gateway image, create, join
//! and start a game; the backend container starts a `galaxy/game:integration`
//! engine on the stack's network through the mounted Docker socket; orders,
//! an operator's forced turn and the report; the start reaches both players
//! over the gateway's push WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use futures_util::StreamExt;
use galaxy_integration::api::json_of;
use galaxy_integration::testenv::{self, Stack};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn push_socket(stack: &Stack, token: &str) -> Ws {
    let mut req = stack.ws_url("/api/v1/push").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .expect("push upgrade")
        .0
}

/// Frames until one of `kind` arrives (pings and other events skipped).
async fn event_of(ws: &mut Ws, kind: &str, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within {limit:?}"))
            .expect("socket open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            let frame: Value = serde_json::from_str(t.as_str()).unwrap();
            if frame["kind"] == kind {
                return frame;
            }
        }
    }
}

async fn report(stack: &Stack, token: &str, id: &str) -> Value {
    let url = stack.url(&format!("/api/v1/games/{id}/report"));
    json_of(
        stack.call(reqwest::Method::GET, &url, token, None).await,
        200,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_game_from_lobby_to_a_forced_turn_through_the_shipped_images() {
    let stack = testenv::bootstrap().await;
    let admin = stack.register_engine().await;
    let (alice, alice_id) = stack.sign_in("alice@example.test").await;
    let (bob, _) = stack.sign_in("bob@example.test").await;
    let mut alice_ws = push_socket(&stack, &alice).await;
    let mut bob_ws = push_socket(&stack, &bob).await;

    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.url("/api/v1/lobby/games"),
            &alice,
            Some(
                json!({"name": "Containers", "race_name": "Vega", "min_players": 2,
                        "max_players": 4, "turn_interval_seconds": 3600}),
            ),
        )
        .await;
    let game = json_of(r, 201).await;
    let id = game["id"].as_str().unwrap().to_owned();
    assert_eq!(game["engine_version"], testenv::ENGINE_VERSION);

    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.url(&format!("/api/v1/lobby/games/{id}/join")),
            &bob,
            Some(json!({"race_name": "Sol"})),
        )
        .await;
    json_of(r, 200).await;
    let joined = event_of(
        &mut alice_ws,
        "lobby.member_joined",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(joined["payload"]["game_id"], id.as_str());

    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.url(&format!("/api/v1/lobby/games/{id}/start")),
            &alice,
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    for ws in [&mut alice_ws, &mut bob_ws] {
        let started = event_of(ws, "lobby.game_started", Duration::from_secs(60)).await;
        assert_eq!(started["payload"]["game_id"], id.as_str());
    }
    let lobby = json_of(
        stack
            .call(
                reqwest::Method::GET,
                &stack.url(&format!("/api/v1/lobby/games/{id}")),
                &alice,
                None,
            )
            .await,
        200,
    )
    .await;
    assert_eq!(lobby["status"], "running", "{lobby}");

    // The engine: from the engine image, on the stack's network, with its volume.
    let inspect: Value =
        serde_json::from_str(&testenv::must(&["inspect", &format!("galaxy-game-{id}")])).unwrap();
    let engine = &inspect[0];
    assert_eq!(engine["Config"]["Image"], testenv::GAME);
    assert_eq!(engine["State"]["Running"], true);
    assert!(engine["NetworkSettings"]["Networks"][stack.network()].is_object());
    let backend: Value = serde_json::from_str(&testenv::must(&[
        "inspect",
        &format!("{}-backend", stack.id),
    ]))
    .unwrap();
    assert_eq!(backend[0]["Config"]["Image"], testenv::BACKEND);
    assert_eq!(
        backend[0]["Config"]["User"], "0:0",
        "the suite's backend runs as uid 0"
    );

    // Orders: the engine's refusal is a 400 with its reason; valid ones 202.
    let orders = stack.url(&format!("/api/v1/games/{id}/orders"));
    let r = stack
        .call(
            reqwest::Method::POST,
            &orders,
            &alice,
            Some(json!({"orders": [{"type": "build_ships", "count": 11}]})),
        )
        .await;
    let refused = json_of(r, 400).await;
    assert!(
        !refused["detail"].as_str().unwrap_or("").is_empty(),
        "{refused}"
    );
    let r = stack
        .call(
            reqwest::Method::POST,
            &orders,
            &alice,
            Some(json!({"orders": [{"type": "build_ships", "count": 3}]})),
        )
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(report(&stack, &alice, &id).await["turn"], 0);

    // The operator forces the next turn; the report shows the orders applied.
    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.backend(&format!("/api/v1/admin/runtime/{id}/force-next-turn")),
            &admin,
            None,
        )
        .await;
    json_of(r, 202).await;
    stack
        .eventually(Duration::from_secs(20), "turn 1", || async {
            report(&stack, &alice, &id).await["turn"] == 1
        })
        .await;
    let after = report(&stack, &alice, &id).await;
    assert_eq!(after["race"], "Vega");
    assert_eq!(after["ships"], 3, "{after}");
    assert!(!alice_id.is_empty());
}
