//! Small HTTP helpers the scenarios share: authenticated calls, status
//! checks with the body in the failure message, and the email-code sign-in
//! (reading the code from the outbox row, as a player reads their mail).

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use galaxy_testdb::TestDb;
use serde_json::{Value, json};

use crate::Backend;

/// `method path` with a bearer token and an optional JSON body.
pub async fn call(
    b: &Backend,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = b.client.request(method, b.url(path)).bearer_auth(token);
    if let Some(body) = body {
        r = r.json(&body);
    }
    r.send().await.expect("HTTP request")
}

/// `GET path` with a bearer token.
pub async fn get(b: &Backend, path: &str, token: &str) -> reqwest::Response {
    call(b, reqwest::Method::GET, path, token, None).await
}

/// `DELETE path` with a bearer token.
pub async fn delete(b: &Backend, path: &str, token: &str) -> reqwest::Response {
    call(b, reqwest::Method::DELETE, path, token, None).await
}

/// The JSON body of `GET path` with a bearer token, asserting 200.
pub async fn get_json(b: &Backend, path: &str, token: &str) -> Value {
    json_of(get(b, path, token).await, 200).await
}

/// `POST path` with a bearer token and an optional JSON body.
pub async fn post(b: &Backend, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    call(b, reqwest::Method::POST, path, token, body).await
}

/// Asserts the status (showing the body when it differs) and returns the JSON body.
pub async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// The 6-digit code in a login mail's text.
pub fn code_in_text(body_text: &str) -> String {
    body_text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code in the mail")
        .to_owned()
}

#[derive(diesel::QueryableByName)]
struct MailText {
    #[diesel(sql_type = Text)]
    body_text: String,
}

/// The code of the newest login mail to `email` in the outbox.
pub async fn login_code(db: &TestDb, email: &str) -> String {
    let mut conn = db.pool().get().await.expect("connection");
    let mail: MailText = diesel::sql_query(
        "SELECT body_text FROM mail_deliveries WHERE to_address = $1 AND kind = 'auth.login_code' \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind::<Text, _>(email)
    .get_result(&mut conn)
    .await
    .expect("a login mail in the outbox");
    code_in_text(&mail.body_text)
}

/// Signs `email` in through the email-code flow; (token, account id).
pub async fn sign_in(b: &Backend, db: &TestDb, email: &str) -> (String, String) {
    let body = sign_in_at(&b.client, &b.url(""), db, email, None).await;
    (
        body["token"].as_str().expect("token").to_owned(),
        body["account"]["id"]
            .as_str()
            .expect("account id")
            .to_owned(),
    )
}

/// The email-code flow against `base` (a backend or a gateway), optionally
/// claiming an `X-Forwarded-For`; the verify answer.
pub async fn sign_in_at(
    client: &reqwest::Client,
    base: &str,
    db: &TestDb,
    email: &str,
    xff: Option<&str>,
) -> Value {
    let with_xff = |r: reqwest::RequestBuilder| match xff {
        Some(v) => r.header("x-forwarded-for", v),
        None => r,
    };
    let r = with_xff(client.post(format!("{base}/api/v1/auth/email-code")))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("request a code");
    let challenge = json_of(r, 202).await;
    let code = login_code(db, email).await;
    let r = with_xff(client.post(format!("{base}/api/v1/auth/email-code/verify")))
        .json(&json!({ "challenge_id": challenge["challenge_id"], "code": code }))
        .send()
        .await
        .expect("verify the code");
    json_of(r, 200).await
}
