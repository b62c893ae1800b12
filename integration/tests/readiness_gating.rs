//! Container scenario: readiness as Docker and the gateway see it — both
//! images' HEALTHCHECK turns healthy; a database outage makes the backend
//! unready and writes through the gateway answer 503 `unavailable`; both
//! recover with no restart; a stopped backend makes the gateway unready.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use galaxy_integration::testenv;
use serde_json::Value;

async fn status(client: &reqwest::Client, url: &str) -> Option<u16> {
    client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_database_and_the_backend() {
    let mut stack = testenv::bootstrap().await;
    // A game needs a registered engine version, so the create below
    // reaches the database (and not a 409 from the cache).
    stack.register_engine().await;
    let (token, _) = stack.sign_in("lin@example.test").await;
    let games = stack.url("/api/v1/lobby/games");

    for container in [
        format!("{}-backend", stack.id),
        format!("{}-gateway", stack.id),
    ] {
        stack
            .eventually(
                Duration::from_secs(40),
                &format!("{container} healthy"),
                || async { stack.health(&container) == "healthy" },
            )
            .await;
    }

    stack.cut_database();
    stack
        .eventually(Duration::from_secs(20), "backend unready", || async {
            status(&stack.client, &stack.backend("/readyz")).await == Some(503)
        })
        .await;
    let body: Value = stack
        .client
        .get(stack.backend("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["ready"], false, "{body}");
    // A write through the gateway: 503 `unavailable`, never a 500.
    stack
        .eventually(
            Duration::from_secs(20),
            "503 through the gateway",
            || async {
                let r = stack
                    .call(
                        reqwest::Method::POST,
                        &games,
                        &token,
                        Some(serde_json::json!({"name": "Outage", "race_name": "Vega", "min_players": 2,
                        "max_players": 4, "turn_interval_seconds": 3600})),
                    )
                    .await;
                if r.status() != 503 {
                    return false;
                }
                let ct = r.headers()["content-type"]
                    .to_str()
                    .unwrap_or("")
                    .to_owned();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                ct.starts_with("application/problem+json") && body["code"] == "unavailable"
            },
        )
        .await;

    stack.restore_database();
    stack
        .eventually(Duration::from_secs(30), "backend ready again", || async {
            status(&stack.client, &stack.backend("/readyz")).await == Some(200)
        })
        .await;
    stack
        .eventually(Duration::from_secs(20), "requests served again", || async {
            stack
                .call(reqwest::Method::GET, &games, &token, None)
                .await
                .status()
                == 200
        })
        .await;

    let exit = stack.stop_backend();
    assert!(exit.success(), "{exit}");
    stack
        .eventually(
            Duration::from_secs(20),
            "gateway unready without a backend",
            || async { status(&stack.client, &stack.url("/readyz")).await == Some(503) },
        )
        .await;
    stack.start_backend().await;
    stack
        .eventually(Duration::from_secs(30), "gateway ready again", || async {
            status(&stack.client, &stack.url("/readyz")).await == Some(200)
        })
        .await;
}
