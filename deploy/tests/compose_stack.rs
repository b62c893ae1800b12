//! deploy/compose.yaml's backend and gateway environments, run from the
//! shipped images (testenv::ComposeStack says how it stands in for the
//! services whose images cannot be pulled here): the backend reaches
//! PostgreSQL and the mail sink by host name, creates its engine network
//! through the Docker API, and exits 0 on SIGTERM; the gateway reaches the
//! backend by its DNS name.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use galaxy_deploy::service_environment;
use galaxy_integration::api::{json_of, login_code};
use galaxy_integration::testenv::{ComposeStack, docker};
use serde_json::{Value, json};

fn compose() -> String {
    let path = format!("{}/compose.yaml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn network_labels(name: &str) -> Option<Value> {
    let out = docker(&["network", "inspect", "-f", "{{json .Labels}}", name]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("labels as JSON"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_environment_boots_signs_a_player_in_and_stops_cleanly() {
    let env = service_environment(&compose());
    let mut stack = ComposeStack::boot(&env["backend"], &env["gateway"]).await;

    // The backend made the engine network it was told to use, and marked it.
    let labels = network_labels(&stack.engine_network)
        .unwrap_or_else(|| panic!("no network {}:\n{}", stack.engine_network, stack.dump()));
    assert_eq!(labels[galaxy_runtime::LABEL_BACKEND], "1", "{labels}");

    // A player signs in through the published gateway: the request crosses
    // gateway → backend (by DNS name) → PostgreSQL (by host name), and the
    // code goes out to the SMTP sink (by host name).
    let client = reqwest::Client::new();
    let email = "compose-player@example.test";
    let r = client
        .post(format!("{}/api/v1/auth/email-code", stack.gateway_url))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("request a code through the gateway");
    let challenge = json_of(r, 202).await;
    let code = login_code(&stack.db, email).await;
    let r = client
        .post(format!(
            "{}/api/v1/auth/email-code/verify",
            stack.gateway_url
        ))
        .json(&json!({ "challenge_id": challenge["challenge_id"], "code": code }))
        .send()
        .await
        .expect("verify the code");
    let session = json_of(r, 200).await;
    assert!(session["token"].is_string(), "{session}");
    let started = std::time::Instant::now();
    while stack.smtp.message_count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no mail reached the sink:\n{}",
            stack.dump()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stack.smtp.messages()[0].text().contains(&code));

    let gateway = stack.stop_gateway();
    assert!(gateway.success(), "gateway on SIGTERM: {gateway}");
    let backend = stack.stop_backend();
    assert!(backend.success(), "backend on SIGTERM: {backend}");
}
