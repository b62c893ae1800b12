//! Container scenario: the SMTP server refuses a sign-in mail for good, so
//! the backend dead-letters it; the operator finds it, fixes the relay and
//! resends; the player gets the code and signs in through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use galaxy_integration::api::{code_in_text, json_of};
use galaxy_integration::testenv;
use galaxy_testsmtp::Reply;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_sign_in_mail_is_resent_by_the_operator() {
    let stack = testenv::bootstrap().await;
    let admin = stack.admin_token().await;
    let email = "mo@example.test";
    stack.smtp.set_reply(Reply::reject(550));

    let r = stack
        .client
        .post(stack.url("/api/v1/auth/email-code"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    let challenge = json_of(r, 202).await["challenge_id"].clone();

    let dead_letters = stack.backend("/api/v1/admin/mail/dead-letters");
    stack
        .eventually(Duration::from_secs(20), "a dead letter", || async {
            let r = stack
                .call(reqwest::Method::GET, &dead_letters, &admin, None)
                .await;
            r.json::<Value>().await.unwrap_or(Value::Null)["total"] == 1
        })
        .await;
    let dead = json_of(
        stack
            .call(reqwest::Method::GET, &dead_letters, &admin, None)
            .await,
        200,
    )
    .await;
    let delivery = &dead["items"][0];
    assert_eq!(delivery["status"], "dead_lettered", "{delivery}");
    assert_eq!(delivery["kind"], "auth.login_code");
    let id = delivery["id"].as_str().unwrap().to_owned();
    assert!(stack.smtp.messages().is_empty());

    stack.smtp.set_reply(Reply::Accept);
    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.backend(&format!("/api/v1/admin/mail/deliveries/{id}/resend")),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    stack
        .eventually(Duration::from_secs(20), "the resent mail", || async {
            stack
                .smtp
                .messages()
                .iter()
                .any(|m| m.to.iter().any(|t| t == email))
        })
        .await;

    let delivery = json_of(
        stack
            .call(
                reqwest::Method::GET,
                &stack.backend(&format!("/api/v1/admin/mail/deliveries/{id}")),
                &admin,
                None,
            )
            .await,
        200,
    )
    .await;
    assert_eq!(delivery["status"], "sent", "{delivery}");
    let attempts = json_of(
        stack
            .call(
                reqwest::Method::GET,
                &stack.backend(&format!("/api/v1/admin/mail/deliveries/{id}/attempts")),
                &admin,
                None,
            )
            .await,
        200,
    )
    .await;
    let numbers: Vec<i64> = attempts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt_no"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 2, "{attempts}");
    assert!(
        numbers.contains(&1) && numbers.contains(&2),
        "attempt_no keeps counting: {attempts}"
    );
    // A sent mail is not resent.
    let r = stack
        .call(
            reqwest::Method::POST,
            &stack.backend(&format!("/api/v1/admin/mail/deliveries/{id}/resend")),
            &admin,
            None,
        )
        .await;
    assert_eq!(json_of(r, 409).await["code"], "already_sent");

    let mail = stack
        .smtp
        .messages()
        .into_iter()
        .find(|m| m.to.iter().any(|t| t == email))
        .unwrap();
    let r = stack
        .client
        .post(stack.url("/api/v1/auth/email-code/verify"))
        .json(&json!({ "challenge_id": challenge, "code": code_in_text(&mail.body()) }))
        .send()
        .await
        .unwrap();
    assert!(json_of(r, 200).await["token"].is_string());
}
