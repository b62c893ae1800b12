//! Container scenario: a player signs in through the gateway image by the
//! code the backend image mails to a real SMTP server, uses the session and
//! signs out; wrong codes and missing tokens are problem+json.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use galaxy_integration::api::{code_in_text, json_of};
use galaxy_integration::testenv;
use serde_json::{Value, json};

async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_player_signs_in_by_mailed_code_through_the_gateway() {
    let stack = testenv::bootstrap().await;
    let email = "ada@example.test";

    let r = stack
        .client
        .post(stack.url("/api/v1/auth/email-code"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    let challenge = json_of(r, 202).await["challenge_id"].clone();

    // The mail crosses from the backend container to the host's SMTP server.
    stack
        .eventually(Duration::from_secs(20), "the sign-in mail", || async {
            stack
                .smtp
                .messages()
                .iter()
                .any(|m| m.to.iter().any(|t| t == email))
        })
        .await;
    let mail = stack
        .smtp
        .messages()
        .into_iter()
        .find(|m| m.to.iter().any(|t| t == email))
        .unwrap();
    let code = code_in_text(&mail.body());

    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = stack
        .client
        .post(stack.url("/api/v1/auth/email-code/verify"))
        .json(&json!({ "challenge_id": challenge, "code": wrong }))
        .send()
        .await
        .unwrap();
    problem(r, 401, "invalid_code").await;

    let r = stack
        .client
        .post(stack.url("/api/v1/auth/email-code/verify"))
        .json(&json!({ "challenge_id": challenge, "code": code }))
        .send()
        .await
        .unwrap();
    let session = json_of(r, 200).await;
    let token = session["token"].as_str().unwrap().to_owned();

    let me = json_of(
        stack
            .call(
                reqwest::Method::GET,
                &stack.url("/api/v1/user/me"),
                &token,
                None,
            )
            .await,
        200,
    )
    .await;
    assert_eq!(me["id"], session["account"]["id"], "{me}");

    let r = stack
        .client
        .get(stack.url("/api/v1/user/me"))
        .send()
        .await
        .unwrap();
    problem(r, 401, "unauthorized").await;

    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.url("/api/v1/auth/logout"),
            &token,
            None,
        )
        .await;
    assert!(r.status().is_success(), "logout: {}", r.status());
    let r = stack
        .call(
            reqwest::Method::GET,
            &stack.url("/api/v1/user/me"),
            &token,
            None,
        )
        .await;
    problem(r, 401, "unauthorized").await;

    // Logs name the address by hash only, in both images.
    for logs in [
        stack.backend_container().stdout_lines(),
        stack.gateway_container().stdout_lines(),
    ] {
        assert!(
            !logs.iter().any(|l| l.contains(email)),
            "an address in the logs"
        );
    }
}
