//! The gateway (SYSTEM.md §11) in front of real backends, against a real
//! PostgreSQL and Redis, with a real WebSocket client: the proxy and its
//! trust boundary, the sign-in limits, and players' push sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use futures_util::StreamExt;
use galaxy_integration::api::{json_of, sign_in_at};
use galaxy_integration::push::{Ws, next_frame, open, push_events};
use galaxy_integration::{Backend, BackendBuilder, Gateway, GatewayBuilder, RedisServer};
use galaxy_testdb::TestDb;
use serde_json::{Value, json};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;

const ADMIN_PASSWORD: &str = "an-admin-password-for-tests";
const GB: &str = "81.2.69.142";

fn backend(db: &TestDb) -> BackendBuilder {
    BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .env("BACKEND_NOTIFICATION_WORKER_INTERVAL", "100ms")
        // Every request reaches the backend from the gateway's verdict of
        // 127.0.0.1; the gateway's own limits are what these tests measure.
        .env("BACKEND_AUTH_IP_CODE_LIMIT", "10000/1m")
        .env("BACKEND_AUTH_EMAIL_CODE_LIMIT", "10000/1m")
}

async fn start_backend(db: &TestDb) -> Backend {
    let mut b = backend(db).spawn();
    b.wait_ready(Duration::from_secs(20)).await;
    b
}

async fn start_gateway(builder: GatewayBuilder) -> Gateway {
    let mut g = builder.spawn();
    g.wait_ready(Duration::from_secs(20)).await;
    g
}

/// Signs `email` in through the gateway: (token, account id).
async fn player(g: &Gateway, db: &TestDb, email: &str) -> (String, String) {
    let body = sign_in_at(&g.client, &g.url(""), db, email, None).await;
    (
        body["token"].as_str().unwrap().to_owned(),
        body["account"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Reads until the close frame; its code. Event frames before it are fine.
async fn close_code(ws: &mut Ws, limit: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no close frame within {limit:?}"),
            Ok(Some(Ok(Message::Close(Some(frame))))) => return u16::from(frame.code),
            Ok(Some(Ok(Message::Close(None)))) => return 1005,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("socket error before the close frame: {e}"),
            Ok(None) => panic!("socket ended without a close frame"),
        }
    }
}

/// Asserts nothing but pings arrives for `quiet`.
async fn assert_quiet(ws: &mut Ws, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(msg) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_reaches_each_socket_of_the_player_once() {
    let db = TestDb::new();
    let b = start_backend(&db).await;
    let g = start_gateway(GatewayBuilder::new(&[&b])).await;

    // The operator registers an engine version (on the backend: admin
    // routes are not on the gateway).
    let r = b
        .client
        .post(b.url("/api/v1/admin/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let admin = json_of(r, 200).await["token"].as_str().unwrap().to_owned();
    let r = b
        .client
        .post(b.url("/api/v1/admin/engine-versions"))
        .bearer_auth(&admin)
        .json(&json!({"version": "1.0.0", "image": "galaxy/game:integration"}))
        .send()
        .await
        .unwrap();
    json_of(r, 201).await;

    let (owner, owner_id) = player(&g, &db, "owner@example.test").await;
    let (joiner, _) = player(&g, &db, "joiner@example.test").await;
    let mut first = open(&g, &owner, "").await;
    let mut second = open(&g, &owner, "").await;
    for ws in [&mut first, &mut second] {
        let welcome = next_frame(ws, Duration::from_secs(5)).await;
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["account_id"], owner_id.as_str());
        assert_eq!(welcome["gateway_id"], "gw-test");
    }

    let r = g
        .client
        .post(g.url("/api/v1/lobby/games"))
        .bearer_auth(&owner)
        .json(
            &json!({"name": "Andromeda", "race_name": "Owls", "min_players": 2,
                      "max_players": 4, "turn_interval_seconds": 3600}),
        )
        .send()
        .await
        .unwrap();
    let game = json_of(r, 201).await;
    let r = g
        .client
        .post(g.url(&format!(
            "/api/v1/lobby/games/{}/join",
            game["id"].as_str().unwrap()
        )))
        .bearer_auth(&joiner)
        .json(&json!({"race_name": "Larks"}))
        .send()
        .await
        .unwrap();
    json_of(r, 200).await;

    let mut ids = Vec::new();
    for ws in [&mut first, &mut second] {
        let event = next_frame(ws, Duration::from_secs(5)).await;
        assert_eq!(event["type"], "event");
        assert_eq!(event["kind"], "lobby.member_joined");
        assert_eq!(event["payload"]["game_id"], game["id"]);
        assert_eq!(event["payload"]["race_name"], "Larks");
        assert!(event["event_id"].is_string() && event["created_at"].is_string());
        ids.push(event["id"].clone());
    }
    assert_eq!(ids[0], ids[1], "one inbox item, on both sockets");
    // Once each: nothing more arrives.
    assert_quiet(&mut first, Duration::from_secs(1)).await;
    assert_quiet(&mut second, Duration::from_secs(1)).await;

    // The frame's id is the inbox item id.
    let r = g
        .client
        .post(g.url(&format!(
            "/api/v1/user/notifications/{}/read",
            ids[0].as_str().unwrap()
        )))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_address_is_the_gateways_verdict() {
    let db = TestDb::new();
    let b = start_backend(&db).await;
    let edge = start_gateway(GatewayBuilder::new(&[&b])).await;
    let behind_lb =
        start_gateway(GatewayBuilder::new(&[&b]).env("GATEWAY_TRUSTED_PROXIES", "127.0.0.0/8"))
            .await;

    // A client claiming a GeoIP address gets no country from it.
    let spoofed = sign_in_at(
        &edge.client,
        &edge.url(""),
        &db,
        "spoof@example.test",
        Some(GB),
    )
    .await;
    assert_eq!(spoofed["account"]["declared_country"], Value::Null);
    // Behind a trusted proxy, the forwarded client's country is recorded.
    let forwarded = sign_in_at(
        &behind_lb.client,
        &behind_lb.url(""),
        &db,
        "forwarded@example.test",
        Some(&format!("198.51.100.77, {GB}")),
    )
    .await;
    assert_eq!(forwarded["account"]["declared_country"], "GB");

    // Request ids are forwarded and echoed.
    let token = forwarded["token"].as_str().unwrap();
    let r = edge
        .client
        .get(edge.url("/api/v1/user/me"))
        .bearer_auth(token)
        .header("x-request-id", "gw-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "gw-req-42");
    json_of(r, 200).await;
    b.eventually(
        Duration::from_secs(5),
        "the backend logs the id",
        || async {
            b.logs()
                .iter()
                .any(|l| l["request_id"] == "gw-req-42" && l["route"] == "/api/v1/user/me")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_non_api_paths_are_answered_by_the_gateway() {
    let db = TestDb::new();
    let b = start_backend(&db).await;
    let g = start_gateway(GatewayBuilder::new(&[&b])).await;
    for path in [
        "/api/v1/admin/users",
        "/api/v1/%61dmin/users",
        "/api/v1/user/../admin/users",
        "/api/v1/admin/auth/login",
        "/console",
        "/metrics",
    ] {
        let r = g.client.get(g.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
    }
    let r = g
        .client
        .post(g.url("/api/v1/admin/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The backend never saw any of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !b.logs()
            .iter()
            .any(|l| l["route"].as_str().is_some_and(|r| r.contains("admin"))
                || l["route"] == "<unmatched>"),
        "{}",
        b.dump()
    );
    // A wrong method on the gateway's own routes is a problem too.
    let r = g.client.post(g.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

async fn request_code(g: &Gateway, email: &str) -> reqwest::Response {
    g.client
        .post(g.url("/api/v1/auth/email-code"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_share_one_sign_in_budget_through_redis() {
    let db = TestDb::new();
    let mut redis = RedisServer::start();
    let b = start_backend(&db).await;
    let builder = || {
        GatewayBuilder::new(&[&b])
            .env("GATEWAY_REDIS_URL", redis.url())
            .env("GATEWAY_AUTH_RATE_LIMIT", "4/1m")
    };
    let one = start_gateway(builder()).await;
    let two = start_gateway(builder()).await;
    // Both gateways wait for their Redis connection in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;

    for (n, g) in [&one, &two, &one, &two].into_iter().enumerate() {
        let r = request_code(g, &format!("p{n}@example.test")).await;
        assert_eq!(r.status(), 202, "request {n}");
    }
    for g in [&one, &two] {
        let r = request_code(g, "over@example.test").await;
        assert_eq!(r.status(), 429);
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "rate_limited");
    }

    // Redis away: each gateway decides alone, and keeps serving.
    redis.stop();
    for g in [&one, &two] {
        let r = request_code(g, "during-outage@example.test").await;
        assert_eq!(r.status(), 202, "{}", g.dump());
    }
    g_logs_say(&one, "Redis unreachable");
    redis.restart();
}

fn g_logs_say(g: &Gateway, needle: &str) {
    assert!(
        g.logs()
            .iter()
            .any(|l| l["message"].as_str().is_some_and(|m| m.contains(needle))),
        "no log line says {needle:?}:\n{}",
        g.dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_logouts_and_slow_consumers() {
    let db = TestDb::new();
    let b = start_backend(&db).await;
    let g = start_gateway(
        GatewayBuilder::new(&[&b])
            .env("GATEWAY_WS_REVALIDATE_INTERVAL", "1s")
            .env("GATEWAY_WS_PING_INTERVAL", "5s")
            .env("GATEWAY_WS_PONG_TIMEOUT", "30s"),
    )
    .await;

    // A bad token: 401 problem, no upgrade.
    let mut req = g.ws_url("/api/v1/push").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer gu_nope".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
        }
        other => panic!("expected a 401, got {other:?}"),
    }

    // A slow consumer is closed with 4008; the player's other socket keeps
    // receiving everything.
    let (token, account) = player(&g, &db, "slow@example.test").await;
    let slow_socket = tokio::net::TcpSocket::new_v4().unwrap();
    slow_socket.set_recv_buffer_size(4096).unwrap();
    let stream = slow_socket.connect(g.http).await.unwrap();
    let mut req = g.ws_url("/api/v1/push").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut slow, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    let mut fast = open(&g, &token, "").await;
    next_frame(&mut fast, Duration::from_secs(5)).await;

    // Paced like a busy game rather than one burst, so the reading socket
    // keeps up with its queue (64) while the other one's buffers fill.
    const EVENTS: usize = 1200;
    let reader = tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < EVENTS {
            let frame = next_frame(&mut fast, Duration::from_secs(20)).await;
            assert!(
                seen.insert(frame["id"].as_str().unwrap().to_owned()),
                "a repeat"
            );
        }
        (fast, seen)
    });
    let mut ids = Vec::new();
    for _ in 0..EVENTS / 10 {
        ids.extend(push_events(&db, &account, 10).await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (mut fast, seen) = reader.await.unwrap();
    assert_eq!(
        seen,
        ids.into_iter().collect(),
        "the reading socket got every event"
    );
    assert_eq!(close_code(&mut slow, Duration::from_secs(15)).await, 4008);

    // Logout: the remaining socket closes with 4001 within the interval.
    let r = g
        .client
        .post(g.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(close_code(&mut fast, Duration::from_secs(5)).await, 4001);
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_outlive_a_backend_restart_and_resume_misses_nothing() {
    let db = TestDb::new();
    let mut b = start_backend(&db).await;
    let g = start_gateway(GatewayBuilder::new(&[&b])).await;
    let (token, account) = player(&g, &db, "phone@example.test").await;
    let mut ws = open(&g, &token, "").await;
    next_frame(&mut ws, Duration::from_secs(5)).await;

    // The backend goes away: the gateway is not ready, the socket stays.
    assert!(b.terminate(Duration::from_secs(15)).success());
    g.eventually(Duration::from_secs(10), "gateway /readyz 503", || async {
        g.status_of("/readyz").await == Some(503)
    })
    .await;
    let r = g
        .client
        .get(g.url("/api/v1/user/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(json_of(r, 502).await["code"], "bad_gateway");
    assert_quiet(&mut ws, Duration::from_secs(1)).await;

    // Back on the same ports: resubscribed, and events reach the same socket.
    let mut b = b.same_env().spawn();
    b.wait_ready(Duration::from_secs(20)).await;
    g.eventually(Duration::from_secs(15), "gateway /readyz 200", || async {
        g.status_of("/readyz").await == Some(200)
    })
    .await;
    let first = push_events(&db, &account, 1).await;
    let frame = next_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame["id"], first[0].as_str());

    // Offline for a while: three events while no socket is open.
    ws.close(None).await.unwrap();
    drop(ws);
    let missed = push_events(&db, &account, 3).await;
    // Each was pushed to the gateway's stream (delivered) before we resume.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut ws = open(&g, &token, &format!("?since={}", first[0])).await;
    assert_eq!(
        next_frame(&mut ws, Duration::from_secs(5)).await["type"],
        "welcome"
    );
    for id in &missed {
        let frame = next_frame(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(frame["id"], id.as_str(), "replayed in order");
        assert_eq!(frame["kind"], "lobby.game_started");
    }
    let live = push_events(&db, &account, 1).await;
    let frame = next_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(frame["id"], live[0].as_str(), "then live ones, none twice");
    assert_quiet(&mut ws, Duration::from_millis(500)).await;

    // An unknown cursor is the client's mistake.
    let mut req = g
        .ws_url(&format!("/api/v1/push?since={}", uuid::Uuid::new_v4()))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected a 400, got {other:?}"),
    }
    b.terminate(Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread")]
async fn origins_upgrade_limits_subprotocol_and_sigterm() {
    let db = TestDb::new();
    let b = start_backend(&db).await;
    let mut g = start_gateway(
        GatewayBuilder::new(&[&b])
            .env("GATEWAY_ALLOWED_ORIGINS", "https://play.example")
            .env("GATEWAY_AUTH_RATE_LIMIT", "6/1m"),
    )
    .await;
    // Sign-in spends two of the six auth tokens; upgrades have their own.
    let (token, _) = player(&g, &db, "browser@example.test").await;

    let browser = |origin: &str| {
        let mut req = g.ws_url("/api/v1/push").into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert("origin", origin.parse().unwrap());
        h.insert(
            "sec-websocket-protocol",
            format!("bearer, {token}").parse().unwrap(),
        );
        req
    };
    match tokio_tungstenite::connect_async(browser("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected a 403, got {other:?}"),
    }
    let (mut ws, resp) = tokio_tungstenite::connect_async(browser("https://play.example"))
        .await
        .expect("an allowed origin upgrades");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "bearer");
    assert_eq!(
        next_frame(&mut ws, Duration::from_secs(5)).await["type"],
        "welcome"
    );
    // ?token= works too.
    let (mut by_query, _) =
        tokio_tungstenite::connect_async(g.ws_url(&format!("/api/v1/push?token={token}")))
            .await
            .unwrap();
    next_frame(&mut by_query, Duration::from_secs(5)).await;

    // Upgrades past the per-address budget (6/1m; three spent) get 429.
    let mut refused = 0;
    for _ in 0..5 {
        match tokio_tungstenite::connect_async(g.ws_url(&format!("/api/v1/push?token={token}")))
            .await
        {
            Ok(_) => {}
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 429);
                assert!(resp.headers().contains_key("retry-after"));
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 2);

    // The images' HEALTHCHECK: 0 while ready.
    let (status, _, stderr) = g.same_env().run(&["healthcheck"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let (status, _, stderr) = b.same_env().run(&["healthcheck"]);
    assert_eq!(status.code(), Some(0), "{stderr}");

    // SIGTERM: sockets close with 1001 and the gateway exits 0.
    g.signal("TERM");
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 1001);
    assert!(g.terminate(Duration::from_secs(10)).success());
    let (status, _, _) = g.same_env().run(&["healthcheck"]);
    assert_eq!(status.code(), Some(1), "nothing listens any more");
    let out = g.stdout_lines().join("\n");
    assert!(!out.contains(&token), "a token in the gateway's logs");
    assert!(!out.contains(&token[3..]), "part of a token in the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_sockets_for_one_account_refuse_the_new_one() {
    let db = TestDb::new();
    let b = start_backend(&db).await;
    let g = start_gateway(GatewayBuilder::new(&[&b]).env("GATEWAY_WS_MAX_PER_ACCOUNT", "2")).await;
    let (token, account) = player(&g, &db, "many@example.test").await;
    let mut a = open(&g, &token, "").await;
    let mut c = open(&g, &token, "").await;
    next_frame(&mut a, Duration::from_secs(5)).await;
    next_frame(&mut c, Duration::from_secs(5)).await;
    let mut third = open(&g, &token, "").await;
    assert_eq!(close_code(&mut third, Duration::from_secs(5)).await, 4029);
    // The first two are untouched.
    push_events(&db, &account, 1).await;
    assert_eq!(
        next_frame(&mut a, Duration::from_secs(5)).await["type"],
        "event"
    );
    assert_eq!(
        next_frame(&mut c, Duration::from_secs(5)).await["type"],
        "event"
    );
}

#[test]
fn check_config_names_the_bad_variable() {
    let (status, _, stderr) = GatewayBuilder::new(&[]).run(&["check-config"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("GATEWAY_BACKEND_URL"), "{stderr}");
    let valid = || {
        GatewayBuilder::new(&[])
            .env("GATEWAY_BACKEND_URL", "http://127.0.0.1:1")
            .env("GATEWAY_BACKEND_GRPC_ADDR", "127.0.0.1:2")
    };
    let (status, _, stderr) = valid()
        .env("GATEWAY_WS_PING_INTERVAL", "soon")
        .run(&["check-config"]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("GATEWAY_WS_PING_INTERVAL"), "{stderr}");
    let (status, _, stderr) = valid().run(&["check-config"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
}
