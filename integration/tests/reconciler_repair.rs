//! Container scenario: the backend container's reconciler repairs the
//! engine network — a killed engine comes back with its turn (the volume
//! survives), and a labelled container nobody asked for is removed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use galaxy_integration::api::json_of;
use galaxy_integration::testenv::{self, Stack, docker, must};
use serde_json::{Value, json};

/// A start config the engine accepts (the orphan must keep running).
const ENGINE_CONFIG: &str = "GALAXY_START_CONFIG={\"game_id\":\"00000000-0000-4000-8000-000000000001\",\"players\":[{\"account_id\":\"00000000-0000-4000-8000-000000000002\",\"race_name\":\"Probe\"}]}";

async fn running_game(stack: &Stack) -> (String, String, String) {
    let admin = stack.register_engine().await;
    let (alice, _) = stack.sign_in("ann@example.test").await;
    let (bob, _) = stack.sign_in("ben@example.test").await;
    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.url("/api/v1/lobby/games"),
            &alice,
            Some(
                json!({"name": "Repair", "race_name": "Vega", "min_players": 2,
                        "max_players": 2, "turn_interval_seconds": 3600}),
            ),
        )
        .await;
    let id = json_of(r, 201).await["id"].as_str().unwrap().to_owned();
    let join = stack.url(&format!("/api/v1/lobby/games/{id}/join"));
    json_of(
        stack
            .call(
                reqwest::Method::POST,
                &join,
                &bob,
                Some(json!({"race_name": "Sol"})),
            )
            .await,
        200,
    )
    .await;
    let start = stack.url(&format!("/api/v1/lobby/games/{id}/start"));
    assert_eq!(
        stack
            .call(reqwest::Method::POST, &start, &alice, None)
            .await
            .status(),
        202
    );
    let game = stack.url(&format!("/api/v1/lobby/games/{id}"));
    stack
        .eventually(Duration::from_secs(60), "game running", || async {
            let r = stack.call(reqwest::Method::GET, &game, &alice, None).await;
            r.json::<Value>().await.unwrap_or(Value::Null)["status"] == "running"
        })
        .await;
    (id, alice, admin)
}

async fn turn(stack: &Stack, token: &str, id: &str) -> Option<i64> {
    let r = stack
        .call(
            reqwest::Method::GET,
            &stack.url(&format!("/api/v1/games/{id}/report")),
            token,
            None,
        )
        .await;
    if r.status() != 200 {
        return None;
    }
    r.json::<Value>().await.ok()?["turn"].as_i64()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_engine_returns_with_its_turn_and_an_orphan_is_removed() {
    let stack = testenv::bootstrap().await;
    let (id, alice, admin) = running_game(&stack).await;
    let force = stack.backend(&format!("/api/v1/admin/runtime/{id}/force-next-turn"));
    json_of(
        stack
            .call(reqwest::Method::POST, &force, &admin, None)
            .await,
        202,
    )
    .await;
    stack
        .eventually(Duration::from_secs(20), "turn 1", || async {
            turn(&stack, &alice, &id).await == Some(1)
        })
        .await;

    let engine = format!("galaxy-game-{id}");
    let started_at = must(&["inspect", "-f", "{{.State.StartedAt}}", &engine]);
    must(&["kill", &engine]);
    stack
        .eventually(Duration::from_secs(60), "the engine restarted", || async {
            let out = docker(&[
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.StartedAt}}",
                &engine,
            ]);
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            text.starts_with("true ") && !text.ends_with(started_at.trim())
        })
        .await;
    stack
        .eventually(
            Duration::from_secs(30),
            "turn 1 after the restart",
            || async { turn(&stack, &alice, &id).await == Some(1) },
        )
        .await;
    let operations = json_of(
        stack
            .call(
                reqwest::Method::GET,
                &stack.backend(&format!("/api/v1/admin/runtime/{id}/operations")),
                &admin,
                None,
            )
            .await,
        200,
    )
    .await;
    assert!(
        operations.to_string().contains("system"),
        "the reconciler's operation: {operations}"
    );

    // A labelled engine container with no record, on this stack's network.
    let orphan = format!("{}-orphan", stack.id);
    must(&[
        "run",
        "-d",
        "--pull=never",
        "--name",
        &orphan,
        "--network",
        stack.network(),
        "--label",
        "galaxy.backend=1",
        "--label",
        &format!("{}={}", testenv::OWNER_LABEL, std::process::id()),
        "-e",
        ENGINE_CONFIG,
        testenv::GAME,
    ]);
    stack
        .eventually(Duration::from_secs(30), "the orphan removed", || async {
            let out = docker(&["inspect", "-f", "{{.State.Running}}", &orphan]);
            !out.status.success() || String::from_utf8_lossy(&out.stdout).trim() == "false"
        })
        .await;
    docker(&["rm", "-f", "-v", &orphan]);
}
