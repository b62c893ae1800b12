//! Issue 3 acceptance (auth, user, admin): the email-code flow, sessions,
//! accounts and the admin surface over HTTP against real backend processes,
//! a real PostgreSQL and the project's GeoIP fixture.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::PathBuf;
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use galaxy_integration::api::{call, delete, get, get_json, post};
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_testdb::count;
use galaxy_testdb::{PrivateServer, TestDb};
use serde_json::{Value, json};

const GB: &str = "81.2.69.142";
const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "bootstrap-password-1";

/// The GeoIP fixture in a directory of its own, removed on drop.
struct GeoFile(PathBuf);

impl GeoFile {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "galaxy-identity-{}-{}",
            std::process::id(),
            galaxy_integration::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("country.mmdb");
        galaxy_geo::fixture::write(&path).unwrap();
        Self(path)
    }
}

impl Drop for GeoFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

struct Stack {
    backend: Backend,
    db: TestDb,
    _geo: GeoFile,
}

fn builder(dsn: &str, geo: &GeoFile) -> BackendBuilder {
    BackendBuilder::new(dsn)
        .env("BACKEND_GEOIP_DB_PATH", geo.0.to_str().unwrap())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", ADMIN)
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
}

async fn stack_with(extra: &[(&str, &str)]) -> Stack {
    let db = TestDb::new();
    let geo = GeoFile::new();
    let mut b = builder(&db.dsn(), &geo);
    for (k, v) in extra {
        b = b.env(k, *v);
    }
    let mut backend = b.spawn();
    backend.wait_ready(Duration::from_secs(20)).await;
    Stack {
        backend,
        db,
        _geo: geo,
    }
}

async fn stack() -> Stack {
    stack_with(&[]).await
}

#[derive(diesel::QueryableByName)]
struct Body {
    #[diesel(sql_type = Text)]
    body_text: String,
}

/// The code in the newest login mail to `email`, read from the outbox table.
async fn code_in(conn: &mut AsyncPgConnection, table: &str, email: &str) -> String {
    let mail: Body = diesel::sql_query(format!(
        "SELECT body_text FROM {table} WHERE to_address = $1 AND kind = 'auth.login_code' \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind::<Text, _>(email)
    .get_result(conn)
    .await
    .unwrap();
    galaxy_integration::api::code_in_text(&mail.body_text)
}

async fn code_for(db: &TestDb, email: &str) -> String {
    let mut conn = db.pool().get().await.unwrap();
    code_in(&mut conn, "mail_deliveries", email).await
}

/// An unauthenticated `POST`, optionally from a forwarded address.
async fn post_as_guest(
    b: &Backend,
    path: &str,
    body: Value,
    xff: Option<&str>,
) -> reqwest::Response {
    let mut r = b.client.post(b.url(path)).json(&body);
    if let Some(ip) = xff {
        r = r.header("X-Forwarded-For", ip);
    }
    r.send().await.unwrap()
}

/// `POST /api/v1/admin/users/{id}/<action>` (block, unblock, sessions/revoke).
async fn admin_user_action(b: &Backend, admin: &str, id: &str, action: &str) -> reqwest::Response {
    post(
        b,
        &format!("/api/v1/admin/users/{id}/{action}"),
        admin,
        None,
    )
    .await
}

/// `PATCH /api/v1/user/me` with a new display name.
async fn rename(b: &Backend, token: &str, display_name: &str) -> reqwest::Response {
    let body = json!({ "display_name": display_name });
    call(
        b,
        reqwest::Method::PATCH,
        "/api/v1/user/me",
        token,
        Some(body),
    )
    .await
}

/// The admin's own password change.
async fn change_password(b: &Backend, token: &str, current: &str, new: &str) -> reqwest::Response {
    let body = json!({ "current_password": current, "new_password": new });
    post(b, "/api/v1/admin/auth/password", token, Some(body)).await
}

async fn request_code(b: &Backend, email: &str, xff: Option<&str>) -> Value {
    let r = post_as_guest(b, "/api/v1/auth/email-code", json!({ "email": email }), xff).await;
    assert_eq!(r.status(), 202);
    r.json().await.unwrap()
}

async fn verify(
    b: &Backend,
    challenge: &Value,
    code: &str,
    xff: Option<&str>,
) -> reqwest::Response {
    post_as_guest(
        b,
        "/api/v1/auth/email-code/verify",
        json!({ "challenge_id": challenge["challenge_id"], "code": code }),
        xff,
    )
    .await
}

/// Signs `email` in; returns (token, verify body).
async fn sign_in(s: &Stack, email: &str, xff: Option<&str>) -> (String, Value) {
    let challenge = request_code(&s.backend, email, xff).await;
    let code = code_for(&s.db, email).await;
    let r = verify(&s.backend, &challenge, &code, xff).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (body["token"].as_str().unwrap().to_owned(), body)
}

async fn admin_login(b: &Backend, password: &str) -> reqwest::Response {
    post_as_guest(
        b,
        "/api/v1/admin/auth/login",
        json!({ "username": ADMIN, "password": password }),
        None,
    )
    .await
}

async fn admin_token(b: &Backend) -> String {
    let r = admin_login(b, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn email_code_flow_from_gb_to_logout() {
    let s = stack().await;
    let b = &s.backend;
    let challenge = request_code(b, "Ann@Example.test", Some(GB)).await;
    assert!(challenge["challenge_id"].is_string());
    assert!(challenge["expires_at"].is_string());
    // An address with no account gets the same answer (shape and status).
    let other = request_code(b, "nobody@example.test", Some(GB)).await;
    assert_eq!(
        other.as_object().unwrap().keys().collect::<Vec<_>>(),
        challenge.as_object().unwrap().keys().collect::<Vec<_>>()
    );

    let code = code_for(&s.db, "ann@example.test").await;
    let r = verify(b, &challenge, &code, Some(GB)).await;
    assert_eq!(r.status(), 200);
    let signed: Value = r.json().await.unwrap();
    assert_eq!(signed["created"], true);
    let token = signed["token"].as_str().unwrap();
    assert!(token.starts_with("gu_"));
    assert_eq!(signed["account"]["email"], "ann@example.test");
    assert_eq!(signed["account"]["declared_country"], "GB");
    assert_eq!(signed["account"]["status"], "active");

    let me = get_json(b, "/api/v1/user/me", token).await;
    assert_eq!(me["declared_country"], "GB");
    assert_eq!(me["id"], signed["account"]["id"]);

    let r = rename(b, token, "Captain Ann").await;
    assert_eq!(r.status(), 200);
    let me = get_json(b, "/api/v1/user/me", token).await;
    assert_eq!(me["display_name"], "Captain Ann");

    let sessions = get_json(b, "/api/v1/auth/sessions", token).await;
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["source_ip"], GB);

    // Signing in again finds the account.
    let (second, again) = sign_in(&s, "ann@example.test", None).await;
    assert_eq!(again["created"], false);
    assert_eq!(again["account"]["declared_country"], "GB");
    let r = post(b, "/api/v1/auth/logout", token, None).await;
    assert_eq!(r.status(), 204);
    problem(get(b, "/api/v1/user/me", token).await, 401, "unauthorized").await;
    assert_eq!(get(b, "/api/v1/user/me", &second).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_expiry_and_the_per_email_limit() {
    let s = stack_with(&[("BACKEND_AUTH_CODE_TTL", "1s")]).await;
    let b = &s.backend;

    // Five wrong codes kill the challenge, even for the right code.
    let challenge = request_code(b, "bob@example.test", None).await;
    let code = code_for(&s.db, "bob@example.test").await;
    for _ in 0..5 {
        problem(
            verify(b, &challenge, &wrong(&code), None).await,
            401,
            "invalid_code",
        )
        .await;
    }
    problem(
        verify(b, &challenge, &code, None).await,
        401,
        "challenge_invalid",
    )
    .await;

    // An expired challenge is refused.
    let challenge = request_code(b, "cy@example.test", None).await;
    let code = code_for(&s.db, "cy@example.test").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    problem(
        verify(b, &challenge, &code, None).await,
        401,
        "challenge_invalid",
    )
    .await;
    assert_eq!(count(&s.db, "SELECT count(*) AS n FROM accounts").await, 0);

    // The sixth request for one address in the window: 429 + Retry-After,
    // whatever the spelling of the address.
    for spelling in [
        "dee@example.test",
        "DEE@example.test",
        " dee@Example.TEST",
        "dee@example.test",
        "Dee@example.test",
    ] {
        request_code(b, spelling, None).await;
    }
    let r = post_as_guest(
        b,
        "/api/v1/auth/email-code",
        json!({ "email": "dee@example.test" }),
        Some(GB),
    )
    .await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry));
    problem(r, 429, "rate_limited").await;
    assert_eq!(
        count(
            &s.db,
            "SELECT count(*) AS n FROM mail_deliveries WHERE to_address = 'dee@example.test'"
        )
        .await,
        5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn local_address_has_no_country_and_gb_requests_are_counted() {
    let s = stack().await;
    let b = &s.backend;
    let (token, signed) = sign_in(&s, "eve@example.test", None).await;
    assert_eq!(signed["account"]["declared_country"], Value::Null);
    assert_eq!(get(b, "/api/v1/user/me", &token).await.status(), 200);

    let n = 7;
    for _ in 0..n {
        let r = b
            .client
            .get(b.url("/api/v1/user/me"))
            .bearer_auth(&token)
            .header("X-Forwarded-For", format!("{GB}, 10.0.0.1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let me = get_json(b, "/api/v1/user/me", &token).await;
    assert_eq!(
        me["declared_country"],
        Value::Null,
        "set once, at registration"
    );

    let admin = admin_token(b).await;
    let id = signed["account"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/admin/users/{id}");
    b.eventually(Duration::from_secs(10), "GB counter flushed", || async {
        let d = get_json(b, &path, &admin).await;
        d["country_counters"]
            .as_array()
            .is_some_and(|c| c.len() == 1 && c[0]["country"] == "GB" && c[0]["request_count"] == n)
    })
    .await;
    let d = get_json(b, &path, &admin).await;
    assert_eq!(d["email"], "eve@example.test");
    assert_eq!(d["declared_country"], Value::Null);
    assert_eq!(d["active_sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_nothing_is_written() {
    let s = stack().await;
    let b = &s.backend;
    let (token, _) = sign_in(&s, "fay@example.test", None).await;
    let admin = admin_token(b).await;
    let before = (
        count(&s.db, "SELECT count(*) AS n FROM auth_challenges").await,
        count(&s.db, "SELECT count(*) AS n FROM mail_deliveries").await,
        count(&s.db, "SELECT count(*) AS n FROM accounts").await,
    );

    for name in [
        json!(""),
        json!("a".repeat(33)),
        json!("bell\u{7}"),
        json!("new\nline"),
        json!("   "),
        json!(5),
        json!(null),
    ] {
        let r = call(
            b,
            reqwest::Method::PATCH,
            "/api/v1/user/me",
            &token,
            Some(json!({ "display_name": name })),
        )
        .await;
        problem(r, 400, "validation_failed").await;
    }
    let r = call(
        b,
        reqwest::Method::PATCH,
        "/api/v1/user/me",
        &token,
        Some(json!({})),
    )
    .await;
    problem(r, 400, "validation_failed").await;
    let me = get_json(b, "/api/v1/user/me", &token).await;
    assert!(me["display_name"].as_str().unwrap().starts_with("Player "));

    for email in [
        json!("not-an-email"),
        json!("a@b"),
        json!("a b@c.test"),
        json!(""),
        json!(42),
        json!(["x@y.z"]),
    ] {
        let r = post_as_guest(
            b,
            "/api/v1/auth/email-code",
            json!({ "email": email }),
            None,
        )
        .await;
        problem(r, 400, "validation_failed").await;
    }
    let r = post_as_guest(b, "/api/v1/auth/email-code", json!("x@y.test"), None).await;
    problem(r, 400, "validation_failed").await;
    for body in [
        json!({ "challenge_id": "nope", "code": "123456" }),
        json!({ "challenge_id": uuid_like(), "code": 123456 }),
        json!({ "challenge_id": uuid_like(), "code": "12345" }),
        json!({ "challenge_id": uuid_like(), "code": "abcdef" }),
        json!({ "challenge_id": uuid_like() }),
    ] {
        let r = post_as_guest(b, "/api/v1/auth/email-code/verify", body, None).await;
        problem(r, 400, "validation_failed").await;
    }
    problem(
        delete(b, "/api/v1/auth/sessions/not-a-uuid", &token).await,
        400,
        "validation_failed",
    )
    .await;
    for path in [
        "/api/v1/admin/users/not-a-uuid",
        "/api/v1/admin/users?status=sleeping",
        "/api/v1/admin/users?page=0",
        "/api/v1/admin/users?page_size=500",
    ] {
        problem(get(b, path, &admin).await, 400, "validation_failed").await;
    }
    for path in [
        "/api/v1/admin/users/12/block",
        "/api/v1/admin/users/x/sessions/revoke",
    ] {
        let r = post(b, path, &admin, None).await;
        problem(r, 400, "validation_failed").await;
    }
    for body in [
        json!({ "username": "ops", "password": "short" }),
        json!({ "username": "A B", "password": "long-enough-password" }),
        json!({ "username": 7, "password": "long-enough-password" }),
    ] {
        let r = post(b, "/api/v1/admin/admins", &admin, Some(body)).await;
        problem(r, 400, "validation_failed").await;
    }
    let r = change_password(b, &admin, ADMIN_PASSWORD, "too-short").await;
    problem(r, 400, "validation_failed").await;

    let after = (
        count(&s.db, "SELECT count(*) AS n FROM auth_challenges").await,
        count(&s.db, "SELECT count(*) AS n FROM mail_deliveries").await,
        count(&s.db, "SELECT count(*) AS n FROM accounts").await,
    );
    assert_eq!(before, after, "nothing written");
    assert_eq!(count(&s.db, "SELECT count(*) AS n FROM admins").await, 1);
    // The old admin password still works.
    assert_eq!(admin_login(b, ADMIN_PASSWORD).await.status(), 200);
}

fn uuid_like() -> &'static str {
    "0190f0f0-0000-7000-8000-000000000000"
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_keep_sessions_and_exactly_one_bootstrap_admin() {
    let mut s = stack().await;
    let (token, _) = sign_in(&s, "gus@example.test", None).await;
    let admin = admin_token(&s.backend).await;
    for round in 0..3 {
        assert!(s.backend.terminate(Duration::from_secs(15)).success());
        // A changed bootstrap password never overwrites the existing admin's.
        let mut next = s
            .backend
            .same_env()
            .env(
                "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
                format!("changed-password-{round}"),
            )
            .spawn();
        next.wait_ready(Duration::from_secs(20)).await;
        s.backend = next;
        let b = &s.backend;
        assert_eq!(
            get(b, "/api/v1/user/me", &token).await.status(),
            200,
            "round {round}"
        );
        assert_eq!(get(b, "/api/v1/admin/admins", &admin).await.status(), 200);
        assert_eq!(count(&s.db, "SELECT count(*) AS n FROM admins").await, 1);
    }
    let b = &s.backend;
    assert_eq!(admin_login(b, "changed-password-2").await.status(), 401);
    assert_eq!(admin_login(b, ADMIN_PASSWORD).await.status(), 200);
    let list = get_json(b, "/api/v1/admin/admins", &admin).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["username"], ADMIN);
}

#[tokio::test(flavor = "multi_thread")]
async fn me_keeps_answering_while_postgres_is_stopped() {
    let server = PrivateServer::start();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port());
    let geo = GeoFile::new();
    let mut backend = builder(&format!("{url}?search_path=backend"), &geo).spawn();
    backend.wait_ready(Duration::from_secs(20)).await;

    let challenge = request_code(&backend, "hal@example.test", None).await;
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let code = code_in(&mut conn, "backend.mail_deliveries", "hal@example.test").await;
    drop(conn);
    let r = verify(&backend, &challenge, &code, Some(GB)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap();

    server.stop();
    backend
        .eventually(Duration::from_secs(10), "readyz 503", || async {
            backend.status_of("/readyz").await == Some(503)
        })
        .await;
    for _ in 0..20 {
        let r = backend
            .client
            .get(backend.url("/api/v1/user/me"))
            .bearer_auth(token)
            .header("X-Forwarded-For", GB)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "no database needed to resolve and read me");
        let me: Value = r.json().await.unwrap();
        assert_eq!(me["email"], "hal@example.test");
    }
    let sessions = get(&backend, "/api/v1/auth/sessions", token).await;
    assert_eq!(sessions.status(), 200);
    // A write needs the database: a clean 503, never a 500.
    let r = rename(&backend, token, "Hal").await;
    assert_eq!(r.status(), 503);
    server.start_again();
    backend.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(get(&backend, "/api/v1/user/me", token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_kinds_never_cross_and_sessions_stay_private() {
    let s = stack().await;
    let b = &s.backend;
    let (ann, _) = sign_in(&s, "ann@example.test", None).await;
    let (bob, _) = sign_in(&s, "bob@example.test", None).await;
    let admin = admin_token(b).await;

    problem(
        get(b, "/api/v1/admin/users", &ann).await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        get(b, "/api/v1/admin/admins", &ann).await,
        401,
        "unauthorized",
    )
    .await;
    problem(get(b, "/api/v1/user/me", &admin).await, 401, "unauthorized").await;
    problem(
        get(b, "/api/v1/auth/sessions", &admin).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(get(b, "/api/v1/admin/users", &admin).await.status(), 200);

    let bobs = get_json(b, "/api/v1/auth/sessions", &bob).await;
    let bob_session = bobs[0]["id"].as_str().unwrap().to_owned();
    let anns = get_json(b, "/api/v1/auth/sessions", &ann).await;
    assert_eq!(anns.as_array().unwrap().len(), 1);
    assert_ne!(anns[0]["id"], bobs[0]["id"]);

    let r = delete(b, &format!("/api/v1/auth/sessions/{bob_session}"), &ann).await;
    problem(r, 404, "not_found").await;
    assert_eq!(get(b, "/api/v1/user/me", &bob).await.status(), 200);
    // Bob can revoke his own.
    let r = delete(b, &format!("/api/v1/auth/sessions/{bob_session}"), &bob).await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(b, "/api/v1/user/me", &bob).await.status(), 401);
    // Garbage and missing tokens.
    problem(
        get(b, "/api/v1/user/me", "gu_garbage").await,
        401,
        "unauthorized",
    )
    .await;
    let r = b.client.get(b.url("/api/v1/user/me")).send().await.unwrap();
    problem(r, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_surface_over_users_and_admins() {
    let s = stack().await;
    let b = &s.backend;
    let (ann, signed) = sign_in(&s, "ann@example.test", None).await;
    let (bob, bob_signed) = sign_in(&s, "bob@example.test", None).await;
    assert_eq!(rename(b, &bob, "Zed Bob").await.status(), 200);
    let admin = admin_token(b).await;
    let ann_id = signed["account"]["id"].as_str().unwrap().to_owned();
    let bob_id = bob_signed["account"]["id"].as_str().unwrap().to_owned();

    let list = get_json(b, "/api/v1/admin/users?page_size=1", &admin).await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], bob_id, "newest first");
    let q = get_json(b, "/api/v1/admin/users?q=zed", &admin).await;
    assert_eq!(q["total"], 1);
    let q = get_json(b, "/api/v1/admin/users?q=ANN@", &admin).await;
    assert_eq!(q["items"][0]["id"], ann_id);

    // Block: sessions revoked, sign-in refused; unblock restores sign-in.
    let r = admin_user_action(b, &admin, &ann_id, "block").await;
    assert_eq!(r.status(), 200);
    let blocked: Value = r.json().await.unwrap();
    assert_eq!(blocked["status"], "blocked");
    assert_eq!(get(b, "/api/v1/user/me", &ann).await.status(), 401);
    let st = get_json(b, "/api/v1/admin/users?status=blocked", &admin).await;
    assert_eq!(st["total"], 1);
    let challenge = request_code(b, "ann@example.test", None).await;
    let code = code_for(&s.db, "ann@example.test").await;
    problem(
        verify(b, &challenge, &code, None).await,
        403,
        "account_blocked",
    )
    .await;
    let r = admin_user_action(b, &admin, &ann_id, "unblock").await;
    assert_eq!(r.status(), 200);
    let (ann2, _) = sign_in(&s, "ann@example.test", None).await;

    // Revoke all of a user's sessions.
    let r = admin_user_action(b, &admin, &ann_id, "sessions/revoke").await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(b, "/api/v1/user/me", &ann2).await.status(), 401);
    let unknown = "0190f0f0-0000-7000-8000-000000000000";
    problem(
        get(b, &format!("/api/v1/admin/users/{unknown}"), &admin).await,
        404,
        "not_found",
    )
    .await;

    // Deletion by the user: 204, sessions gone, sign-in refused, row kept.
    let r = delete(b, "/api/v1/user/me", &bob).await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(b, "/api/v1/user/me", &bob).await.status(), 401);
    let d = get_json(b, &format!("/api/v1/admin/users/{bob_id}"), &admin).await;
    assert_eq!(d["status"], "deleted");
    assert_eq!(d["active_sessions"].as_array().unwrap().len(), 0);
    let r = admin_user_action(b, &admin, &bob_id, "unblock").await;
    problem(r, 409, "account_deleted").await;

    // Admins: create, duplicate, rotate the password (other sessions end).
    let r = post(
        b,
        "/api/v1/admin/admins",
        &admin,
        Some(json!({ "username": "ops", "password": "ops-password-123" })),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = post(
        b,
        "/api/v1/admin/admins",
        &admin,
        Some(json!({ "username": "ops", "password": "ops-password-123" })),
    )
    .await;
    problem(r, 409, "username_taken").await;
    let other = admin_token(b).await;
    let r = change_password(b, &admin, "nope", "rotated-password-1").await;
    problem(r, 403, "wrong_password").await;
    let r = change_password(b, &admin, ADMIN_PASSWORD, "rotated-password-1").await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(b, "/api/v1/admin/admins", &admin).await.status(), 200);
    assert_eq!(get(b, "/api/v1/admin/admins", &other).await.status(), 401);
    assert_eq!(admin_login(b, "rotated-password-1").await.status(), 200);
    let r = post(b, "/api/v1/admin/auth/logout", &admin, None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(b, "/api/v1/admin/admins", &admin).await.status(), 401);

    // The OpenAPI document lists the identity routes.
    let doc: Value = b.get_json("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/auth/email-code",
        "/api/v1/auth/email-code/verify",
        "/api/v1/auth/logout",
        "/api/v1/auth/sessions",
        "/api/v1/auth/sessions/{id}",
        "/api/v1/user/me",
        "/api/v1/admin/auth/login",
        "/api/v1/admin/auth/logout",
        "/api/v1/admin/auth/password",
        "/api/v1/admin/admins",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}",
        "/api/v1/admin/users/{id}/block",
        "/api/v1/admin/users/{id}/unblock",
        "/api/v1/admin/users/{id}/sessions/revoke",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_admin_logins_are_limited() {
    let s = stack_with(&[("BACKEND_ADMIN_LOGIN_LIMIT", "4/15m")]).await;
    let b = &s.backend;
    // Half the limit per username: the third failure for `root` is refused
    // even with the right password.
    for _ in 0..2 {
        problem(
            admin_login(b, "wrong-password").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    let r = admin_login(b, ADMIN_PASSWORD).await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 429, "rate_limited").await;
    // The full limit per source address, across usernames.
    for i in 0..2 {
        let r = post_as_guest(
            b,
            "/api/v1/admin/auth/login",
            json!({ "username": format!("nobody{i}"), "password": "x" }),
            None,
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let r = post_as_guest(
        b,
        "/api/v1/admin/auth/login",
        json!({ "username": "nobody9", "password": "x" }),
        None,
    )
    .await;
    problem(r, 429, "rate_limited").await;
    // Another address is not affected.
    let r = post_as_guest(
        b,
        "/api/v1/admin/auth/login",
        json!({ "username": "nobody9", "password": "x" }),
        Some("192.0.2.1"),
    )
    .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_carry_no_email_token_code_or_password() {
    let mut s = stack().await;
    let email = "secret.person@example.test";
    let mut secrets = vec![email.to_owned(), ADMIN_PASSWORD.to_owned()];
    {
        let b = &s.backend;
        let challenge = request_code(b, email, Some(GB)).await;
        let code = code_for(&s.db, email).await;
        problem(
            verify(b, &challenge, &wrong(&code), Some(GB)).await,
            401,
            "invalid_code",
        )
        .await;
        let r = verify(b, &challenge, &code, Some(GB)).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        assert_eq!(get(b, "/api/v1/user/me", &token).await.status(), 200);
        let r = rename(b, &token, "Quiet").await;
        assert_eq!(r.status(), 200);
        assert_eq!(get(b, "/api/v1/auth/sessions", &token).await.status(), 200);
        assert_eq!(admin_login(b, "a-wrong-admin-password").await.status(), 401);
        let admin = admin_token(b).await;
        let id = body["account"]["id"].as_str().unwrap();
        assert_eq!(
            get(b, &format!("/api/v1/admin/users/{id}"), &admin)
                .await
                .status(),
            200
        );
        let r = change_password(b, &admin, ADMIN_PASSWORD, "a-new-admin-password").await;
        assert_eq!(r.status(), 204);
        assert_eq!(
            post(b, "/api/v1/auth/logout", &token, None).await.status(),
            204
        );
        secrets.extend([
            code.clone(),
            wrong(&code),
            token.clone(),
            token.trim_start_matches("gu_").to_owned(),
            admin.clone(),
            admin.trim_start_matches("ga_").to_owned(),
            "a-wrong-admin-password".to_owned(),
            "a-new-admin-password".to_owned(),
        ]);
        // The 429 path logs too.
        for _ in 0..6 {
            let _ = post_as_guest(
                b,
                "/api/v1/auth/email-code",
                json!({ "email": email }),
                None,
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(s.backend.terminate(Duration::from_secs(15)).success());
    let out = s.backend.stdout_lines().join("\n");
    let err = s.backend.stderr_lines().join("\n");
    for secret in &secrets {
        assert!(
            !out.contains(secret.as_str()),
            "stdout contains a secret: {secret}"
        );
        assert!(
            !err.contains(secret.as_str()),
            "stderr contains a secret: {secret}"
        );
    }
    assert!(
        !out.to_lowercase().contains("secret.person"),
        "no part of the address"
    );
    assert!(
        s.backend
            .logs()
            .iter()
            .any(|l| l.get("email_hash").is_some()
                || l.get("fields").and_then(|f| f.get("email_hash")).is_some()
                || l.to_string().contains("email_hash")),
        "code requests are logged with an email_hash"
    );
}
