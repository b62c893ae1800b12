//! Issue 6 end to end through the real backend, the real Docker daemon and
//! the reference engine image: players create, join and start a game; the
//! engine container runs; orders and a forced turn change the report; players
//! are notified; a killed engine is restarted by the reconciler with its turn.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeSet;
use std::time::Duration;

use galaxy_integration::api::{get, get_json, json_of, post, sign_in};
use galaxy_integration::engines::{
    ENGINE_IMAGE, EngineGuard, admin_login, docker, ensure_engine_image, register_engine,
};
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_notification::proto::PushEvent;
use galaxy_notification::proto::push_client::PushClient;
use galaxy_notification::subscribe_request;
use galaxy_testdb::TestDb;
use galaxy_testdb::count;
use serde_json::{Value, json};

const TOKEN: &str = "test-push-token-0123456789";
const ADMIN_PASSWORD: &str = "an-admin-password-for-tests";
const IMAGE: &str = ENGINE_IMAGE;

/// Logs the bootstrap admin in and registers `version` → `image`; returns
/// the admin token.
async fn register(b: &Backend, version: &str, image: &str) -> String {
    let admin = admin_login(b, "admin", ADMIN_PASSWORD).await;
    register_engine(b, &admin, version, image).await;
    admin
}

async fn join(b: &Backend, token: &str, game_id: &str, race: &str) {
    let r = post(
        b,
        &format!("/api/v1/lobby/games/{game_id}/join"),
        token,
        Some(json!({ "race_name": race })),
    )
    .await;
    json_of(r, 200).await;
}

/// Waits until the lobby shows game `id` in `status`.
async fn wait_for_status(b: &Backend, token: &str, id: &str, status: &str, limit: Duration) {
    b.eventually(limit, &format!("game {status}"), || async {
        let r = get(b, &format!("/api/v1/lobby/games/{id}"), token).await;
        r.json::<Value>().await.unwrap()["status"] == status
    })
    .await;
}

/// The accounts of the next `n` push events of `kind` (others are skipped).
async fn recipients_of(
    stream: &mut tonic::Streaming<PushEvent>,
    kind: &str,
    n: usize,
) -> BTreeSet<String> {
    let mut accounts = BTreeSet::new();
    while accounts.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if ev.kind == kind {
            accounts.insert(ev.account_id);
        }
    }
    accounts
}

#[tokio::test(flavor = "multi_thread")]
async fn a_game_from_lobby_to_forced_turn_and_reconciled_restart() {
    ensure_engine_image();
    let db = TestDb::new();
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_PUSH_TOKEN", TOKEN)
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .env("BACKEND_RUNTIME_TURN_TICK_INTERVAL", "500ms")
        .env("BACKEND_RUNTIME_RECONCILE_INTERVAL", "2s")
        .env("BACKEND_RUNTIME_START_TIMEOUT", "30s")
        .env("BACKEND_NOTIFICATION_WORKER_INTERVAL", "500ms")
        .spawn();
    backend.wait_ready(Duration::from_secs(15)).await;
    let b = &backend;

    // A gateway subscribed to the push stream sees every player event.
    let grpc = b.env("BACKEND_GRPC_LISTEN_ADDR").unwrap().to_owned();
    let mut client = PushClient::connect(format!("http://{grpc}")).await.unwrap();
    let req = subscribe_request("game-test", Some(&format!("Bearer {TOKEN}"))).unwrap();
    let mut stream = client.subscribe(req).await.unwrap().into_inner();

    // The admin registers the engine version.
    let admin = register(b, "1.0.0", IMAGE).await;

    let (alice, alice_id) = sign_in(b, &db, "alice@example.test").await;
    let (bob, bob_id) = sign_in(b, &db, "bob@example.test").await;
    let (carol, _) = sign_in(b, &db, "carol@example.test").await;

    let r = post(
        b,
        "/api/v1/lobby/games",
        &alice,
        Some(json!({
            "name": "First contact", "race_name": "Vega", "min_players": 2, "max_players": 4,
            "turn_interval_seconds": 3600
        })),
    )
    .await;
    let game = json_of(r, 201).await;
    let id = game["id"].as_str().unwrap().to_owned();
    let _engine = EngineGuard(id.clone());
    assert_eq!(
        game["engine_version"], "1.0.0",
        "defaults to the newest active version"
    );

    join(b, &bob, &id, "Sol").await;
    // Only the owner starts.
    let r = post(b, &format!("/api/v1/lobby/games/{id}/start"), &bob, None).await;
    assert_eq!(r.status(), 403);
    let r = post(b, &format!("/api/v1/lobby/games/{id}/start"), &alice, None).await;
    assert_eq!(r.status(), 202);

    wait_for_status(b, &alice, &id, "running", Duration::from_secs(60)).await;

    // The container: name, labels, network and the /data volume.
    let name = format!("galaxy-game-{id}");
    let inspect: Value = serde_json::from_slice(&docker(&["inspect", &name]).stdout).unwrap();
    let c = &inspect[0];
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["Config"]["Labels"]["galaxy.backend"], "1");
    assert_eq!(c["Config"]["Labels"]["galaxy.game_id"], id.as_str());
    assert_eq!(c["Config"]["Labels"]["galaxy.engine_version"], "1.0.0");
    let network = b.env("BACKEND_DOCKER_NETWORK").unwrap();
    assert!(
        c["NetworkSettings"]["Networks"][network].is_object(),
        "on {network}"
    );
    assert!(
        c["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Type"] == "volume" && m["Destination"] == "/data"),
        "a named volume on /data"
    );

    // Both players were told: a push event each, and a mail each.
    assert_eq!(
        recipients_of(&mut stream, "lobby.game_started", 2).await,
        [alice_id.clone(), bob_id.clone()].into_iter().collect()
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM mail_deliveries WHERE kind = 'lobby.game_started' AND to_address IN ('alice@example.test','bob@example.test')").await,
        2
    );

    // Game routes: members only; the engine validates orders.
    let r = get(b, &format!("/api/v1/games/{id}/report"), &carol).await;
    assert_eq!(r.status(), 403);
    let r = post(
        b,
        &format!("/api/v1/games/{id}/orders"),
        &alice,
        Some(json!({"orders": [{"type": "build_ships", "count": 11}]})),
    )
    .await;
    let problem = json_of(r, 400).await;
    assert!(
        !problem["detail"].as_str().unwrap().is_empty(),
        "the engine's reason"
    );
    let r = post(
        b,
        &format!("/api/v1/games/{id}/orders"),
        &alice,
        Some(json!({"orders": [{"type": "build_ships", "count": 3}]})),
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = post(
        b,
        &format!("/api/v1/games/{id}/orders"),
        &bob,
        Some(json!({"orders": [{"type": "raise_industry"}]})),
    )
    .await;
    assert_eq!(r.status(), 202);
    let report = get_json(b, &format!("/api/v1/games/{id}/report"), &alice).await;
    assert_eq!(
        report,
        json!({"turn": 0, "race": "Vega", "industry": 10, "ships": 0})
    );

    // Force the next turn: generated within two ticks, rules applied.
    let r = post(
        b,
        &format!("/api/v1/admin/runtime/{id}/force-next-turn"),
        &admin,
        None,
    )
    .await;
    let op = json_of(r, 202).await;
    assert!(op["operation_id"].is_string());
    b.eventually(Duration::from_secs(5), "turn 1", || async {
        let r = get(b, &format!("/api/v1/games/{id}/report"), &alice).await;
        r.json::<Value>().await.unwrap()["turn"] == 1
    })
    .await;
    let alice_report = get_json(b, &format!("/api/v1/games/{id}/report"), &alice).await;
    assert_eq!(
        alice_report,
        json!({"turn": 1, "race": "Vega", "industry": 10, "ships": 3})
    );
    let bob_report = get_json(b, &format!("/api/v1/games/{id}/report?turn=1"), &bob).await;
    assert_eq!(
        bob_report,
        json!({"turn": 1, "race": "Sol", "industry": 11, "ships": 0})
    );
    assert_eq!(
        recipients_of(&mut stream, "runtime.turn_generated", 2).await,
        [alice_id.clone(), bob_id.clone()].into_iter().collect()
    );

    // The flag was consumed once: the next ticks generate nothing early.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let record = get_json(b, &format!("/api/v1/admin/runtime/{id}"), &admin).await;
    assert_eq!(record["current_turn"], 1);
    assert_eq!(record["skip_next_wait"], false);
    let turns = get_json(b, &format!("/api/v1/games/{id}/turns"), &bob).await;
    assert_eq!(
        turns
            .as_array()
            .map(Vec::len)
            .or(turns["items"].as_array().map(Vec::len)),
        Some(1),
        "{turns}"
    );

    // docker kill → the reconciler restarts the engine; the turn survives.
    assert!(docker(&["kill", &name]).status.success());
    b.eventually(
        Duration::from_secs(20),
        "engine restarted by the reconciler",
        || async {
            let inspect: Value =
                serde_json::from_slice(&docker(&["inspect", &name]).stdout).unwrap_or(Value::Null);
            inspect[0]["State"]["Running"] == true
        },
    )
    .await;
    b.eventually(Duration::from_secs(20), "report served again", || async {
        let r = get(b, &format!("/api/v1/games/{id}/report"), &alice).await;
        r.status() == 200 && r.json::<Value>().await.unwrap()["turn"] == 1
    })
    .await;

    // One operation-log row per operation, each with its outcome.
    let ops = get_json(b, &format!("/api/v1/admin/runtime/{id}/operations"), &admin).await;
    let items = ops["items"].as_array().unwrap();
    for kind in ["start", "force_next_turn"] {
        let op = items
            .iter()
            .find(|o| o["operation"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {ops}"));
        assert_eq!(op["outcome"], "succeeded", "{op}");
        assert!(op["finished_at"].is_string());
    }
    let user_start = items
        .iter()
        .find(|o| o["operation"] == "start" && o["actor"] == alice_id.as_str());
    assert!(
        user_start.is_some(),
        "the player's start is logged with the player as actor: {ops}"
    );
    assert!(
        items.iter().any(|o| o["actor"] == "system"),
        "the reconciler's restart is logged: {ops}"
    );

    // An operator stops the engine: the lobby shows the game paused (orders
    // are refused as for any game not running), and running again after a
    // start.
    let game_status = || async {
        let r = get(b, &format!("/api/v1/lobby/games/{id}"), &alice).await;
        r.json::<Value>().await.unwrap()["status"].clone()
    };
    let admin_post = |what: &'static str| {
        let path = format!("/api/v1/admin/runtime/{id}/{what}");
        let admin = admin.clone();
        async move { post(b, &path, &admin, None).await }
    };
    assert_eq!(admin_post("stop").await.status(), 202);
    assert_eq!(game_status().await, "paused");
    b.eventually(Duration::from_secs(30), "engine stopped", || async {
        !docker(&["inspect", &name]).status.success()
    })
    .await;
    assert_eq!(game_status().await, "paused");
    assert_eq!(admin_post("start").await.status(), 202);
    b.eventually(Duration::from_secs(60), "game running again", || async {
        game_status().await == "running"
    })
    .await;

    assert!(backend.terminate(Duration::from_secs(15)).success());
}

/// A start that cannot pull its image: the game goes back to `open` (the
/// owner may retry), the record is `failed` with the reason, and the admin
/// is mailed `runtime.image_pull_failed` — through the real adapters.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_start_reopens_the_game_and_mails_the_admin() {
    assert!(
        docker(&["info"]).status.success(),
        "no Docker daemon answers: the game tests need one"
    );
    let db = TestDb::new();
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .env("BACKEND_RUNTIME_IMAGE_PULL_POLICY", "never")
        .env("BACKEND_NOTIFICATION_ADMIN_EMAIL", "ops@example.test")
        .spawn();
    backend.wait_ready(Duration::from_secs(15)).await;
    let b = &backend;
    let absent = format!("galaxy/absent:{}", std::process::id());
    let admin = register(b, "ghost", &absent).await;

    let (alice, _) = sign_in(b, &db, "alice@example.test").await;
    let (bob, _) = sign_in(b, &db, "bob@example.test").await;
    let r = post(b, "/api/v1/lobby/games", &alice, Some(json!({"name": "Never", "race_name": "Vega", "min_players": 2, "max_players": 2, "turn_interval_seconds": 60})))
    .await;
    let id = json_of(r, 201).await["id"].as_str().unwrap().to_owned();
    let _engine = EngineGuard(id.clone());
    join(b, &bob, &id, "Sol").await;
    let r = post(b, &format!("/api/v1/lobby/games/{id}/start"), &alice, None).await;
    assert_eq!(r.status(), 202);

    wait_for_status(b, &alice, &id, "open", Duration::from_secs(20)).await;
    let record = get_json(b, &format!("/api/v1/admin/runtime/{id}"), &admin).await;
    assert_eq!(record["observed_state"], "failed", "{record}");
    assert!(
        !record["last_error"].as_str().unwrap_or_default().is_empty(),
        "{record}"
    );
    b.eventually(Duration::from_secs(10), "admin alert mailed", || async {
        count(
            &db,
            "SELECT count(*) AS n FROM mail_deliveries WHERE kind = 'runtime.image_pull_failed' AND to_address = 'ops@example.test'",
        )
        .await
            == 1
    })
    .await;
    assert!(
        !docker(&["inspect", &format!("galaxy-game-{id}")])
            .status
            .success(),
        "no container was created"
    );
    assert!(backend.terminate(Duration::from_secs(15)).success());
}
