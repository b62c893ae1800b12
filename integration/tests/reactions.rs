//! Issue 13: a reaction that must follow a commit survives a crash between
//! the two. Each test starts a backend with one fail point armed
//! (`GALAXY_FAILPOINT`, compiled in by this suite's `failpoints` feature of
//! galaxy-core), triggers the action, sees the process die by SIGKILL right
//! after the commit, restarts it without the fail point and checks that the
//! reaction happened exactly once (docs/decisions.md HARD-14, HARD-15).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use galaxy_integration::api::{get, json_of, post, sign_in};
use galaxy_integration::engines::{
    self, ENGINE_IMAGE, EngineGuard, admin_login, ensure_engine_image,
};
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_testdb::TestDb;
use galaxy_testdb::count;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "an-admin-password-for-tests";

fn builder(db: &TestDb) -> BackendBuilder {
    BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .env("BACKEND_NOTIFICATION_WORKER_INTERVAL", "500ms")
        .env("BACKEND_RUNTIME_TURN_TICK_INTERVAL", "500ms")
        .env("BACKEND_RUNTIME_RECONCILE_INTERVAL", "2s")
        .env("BACKEND_RUNTIME_START_TIMEOUT", "30s")
}

/// A ready backend with `point` armed. A backend built without the
/// `failpoints` feature does not say so in its log: that is a build
/// problem, reported as such rather than as a lost reaction.
async fn armed(db: &TestDb, point: &str) -> Backend {
    let mut b = builder(db).env("GALAXY_FAILPOINT", point).spawn();
    b.wait_ready(Duration::from_secs(30)).await;
    assert!(
        b.logs()
            .iter()
            .any(|l| l["message"] == "fail point armed" && l["failpoint"] == point),
        "the backend was built without fail points: build it with \
         `cargo build -p galaxy-backend --features galaxy-core/failpoints` \
         (cargo test --workspace does)\n{}",
        b.dump()
    );
    b
}

/// Waits for the armed backend to kill itself, then starts it again on the
/// same ports and database without the fail point.
async fn died_and_restarted(mut b: Backend, point: &str) -> Backend {
    let status = b.wait_exit(Duration::from_secs(90));
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by SIGKILL at {point}: {status}\n{}",
        b.dump()
    );
    assert!(
        b.stderr_lines()
            .iter()
            .any(|l| l.contains(&format!("fail point {point}"))),
        "{}",
        b.dump()
    );
    let env = b.same_env().without("GALAXY_FAILPOINT");
    drop(b);
    let mut again = env.spawn();
    again.wait_ready(Duration::from_secs(30)).await;
    again
}

/// Sends a request whose answer may never come (the process dies first).
async fn fire(b: &Backend, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) {
    let mut r = b
        .client
        .request(method, b.url(path))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30));
    if let Some(body) = body {
        r = r.json(&body);
    }
    let _ = r.send().await;
}

/// Registers the engine version games are created with; the admin token.
async fn register_engine(b: &Backend) -> String {
    let admin = admin_login(b, "admin", ADMIN_PASSWORD).await;
    engines::register_engine(b, &admin, "1.0.0", ENGINE_IMAGE).await;
    admin
}

async fn create_game(b: &Backend, token: &str, min_players: u32) -> String {
    let r = post(
        b,
        "/api/v1/lobby/games",
        token,
        Some(json!({
            "name": "Crash course", "race_name": "Vega", "min_players": min_players,
            "max_players": 4, "turn_interval_seconds": 3600
        })),
    )
    .await;
    json_of(r, 201).await["id"].as_str().unwrap().to_owned()
}

/// Routes of `kind`'s intents for the game, per intent: (intents, distinct
/// recipients, routes).
async fn intents(db: &TestDb, kind: &str, game_id: &str) -> (i64, i64, i64) {
    let of_game = format!("kind = '{kind}' AND payload->>'game_id' = '{game_id}'");
    (
        count(
            db,
            &format!("SELECT count(*) AS n FROM notification_intents WHERE {of_game}"),
        )
        .await,
        count(
            db,
            &format!(
                "SELECT count(DISTINCT r.account_id) AS n FROM notification_routes r \
             JOIN notification_intents i ON i.id = r.intent_id WHERE {of_game}"
            ),
        )
        .await,
        count(
            db,
            &format!(
                "SELECT count(*) AS n FROM notification_routes r \
             JOIN notification_intents i ON i.id = r.intent_id WHERE {of_game}"
            ),
        )
        .await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_cut_short_by_kill_9_is_completed_after_restart() {
    let db = TestDb::new();
    let b = armed(&db, "user.deleted").await;
    register_engine(&b).await;
    let (ugo, ugo_id) = sign_in(&b, &db, "ugo@example.test").await;
    let (vic, _) = sign_in(&b, &db, "vic@example.test").await;
    // Ugo owns one open game and plays in another; Vic's join of Ugo's game
    // leaves Ugo a push route nobody takes (no gateway is subscribed).
    let owned = create_game(&b, &ugo, 2).await;
    let joined = create_game(&b, &vic, 2).await;
    for (token, game, race) in [(&vic, &owned, "Sol"), (&ugo, &joined, "Orion")] {
        let r = post(
            &b,
            &format!("/api/v1/lobby/games/{game}/join"),
            token,
            Some(json!({ "race_name": race })),
        )
        .await;
        json_of(r, 200).await;
    }
    let pending_push = format!(
        "SELECT count(*) AS n FROM notification_routes WHERE account_id = '{ugo_id}' \
         AND channel = 'push' AND status IN ('pending', 'retrying')"
    );
    let routes = count(&db, &pending_push).await;
    assert!(routes >= 1, "Ugo has a pending push route");

    fire(&b, reqwest::Method::DELETE, "/api/v1/user/me", &ugo, None).await;
    let b = died_and_restarted(b, "user.deleted").await;

    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) AS n FROM accounts WHERE id = '{ugo_id}' AND status = 'deleted'"
            )
        )
        .await,
        1,
        "the deletion committed"
    );
    let live = format!(
        "SELECT count(*) AS n FROM auth_sessions WHERE account_id = '{ugo_id}' AND revoked_at IS NULL"
    );
    b.eventually(Duration::from_secs(20), "the cascade after restart", || async {
        count(&db, &live).await == 0
            && count(&db, &pending_push).await == 0
            && count(&db, &format!("SELECT count(*) AS n FROM games WHERE id = '{owned}' AND status = 'cancelled'")).await == 1
            && count(&db, &format!("SELECT count(*) AS n FROM game_members WHERE game_id = '{joined}' AND account_id = '{ugo_id}' AND left_at IS NOT NULL")).await == 1
    })
    .await;
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) AS n FROM notification_routes WHERE account_id = '{ugo_id}' \
             AND channel = 'push' AND status = 'skipped' AND skip_reason = 'user_deleted'"
            )
        )
        .await,
        routes,
        "each pending push route skipped"
    );
    // Vic, still in Ugo's cancelled game, keeps his seat in his own game.
    let r = get(&b, &format!("/api/v1/lobby/games/{joined}"), &vic).await;
    let game = json_of(r, 200).await;
    assert_eq!(game["members"].as_array().unwrap().len(), 1, "{game}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_cut_short_by_kill_9_revokes_the_sessions_after_restart() {
    let db = TestDb::new();
    let b = armed(&db, "user.blocked").await;
    let (_, ann_id) = sign_in(&b, &db, "ann@example.test").await;
    let (_, _) = sign_in(&b, &db, "ann@example.test").await;
    let admin = admin_login(&b, "admin", ADMIN_PASSWORD).await;
    fire(
        &b,
        reqwest::Method::POST,
        &format!("/api/v1/admin/users/{ann_id}/block"),
        &admin,
        None,
    )
    .await;
    let b = died_and_restarted(b, "user.blocked").await;

    let revoked = format!(
        "SELECT count(*) AS n FROM auth_sessions WHERE account_id = '{ann_id}' AND revoked_at IS NOT NULL"
    );
    b.eventually(
        Duration::from_secs(20),
        "sessions revoked after restart",
        || async { count(&db, &revoked).await == 2 },
    )
    .await;
    // Unblocked, Ann signs in again: that session is not the block's to revoke.
    let admin = admin_login(&b, "admin", ADMIN_PASSWORD).await;
    let r = post(
        &b,
        &format!("/api/v1/admin/users/{ann_id}/unblock"),
        &admin,
        None,
    )
    .await;
    json_of(r, 200).await;
    let (ann, _) = sign_in(&b, &db, "ann@example.test").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = get(&b, "/api/v1/user/me", &ann).await;
    assert_eq!(r.status(), 200, "the new session lives");
    assert_eq!(count(&db, &revoked).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_cut_short_by_kill_9_is_announced_once() {
    let db = TestDb::new();
    let b = armed(&db, "lobby.member_joined").await;
    register_engine(&b).await;
    let (vic, vic_id) = sign_in(&b, &db, "vic@example.test").await;
    let (ugo, _) = sign_in(&b, &db, "ugo@example.test").await;
    let game = create_game(&b, &vic, 2).await;
    fire(
        &b,
        reqwest::Method::POST,
        &format!("/api/v1/lobby/games/{game}/join"),
        &ugo,
        Some(json!({ "race_name": "Orion" })),
    )
    .await;
    let b = died_and_restarted(b, "lobby.member_joined").await;

    let r = get(&b, &format!("/api/v1/lobby/games/{game}"), &vic).await;
    assert_eq!(
        json_of(r, 200).await["members"].as_array().unwrap().len(),
        2,
        "the join committed"
    );
    // One intent, to Vic only (push and email).
    assert_eq!(intents(&db, "lobby.member_joined", &game).await, (1, 1, 2));
    assert_eq!(
        count(&db, &format!(
            "SELECT count(*) AS n FROM notification_routes r JOIN notification_intents i ON i.id = r.intent_id \
             WHERE i.kind = 'lobby.member_joined' AND r.account_id = '{vic_id}'"
        ))
        .await,
        2
    );
}

/// Registers the engine, creates a one-player game and starts it; the
/// game's id and its owner's token.
async fn started_game(b: &Backend, db: &TestDb) -> (String, String, String) {
    let admin = register_engine(b).await;
    let (vic, _) = sign_in(b, db, "vic@example.test").await;
    let game = create_game(b, &vic, 1).await;
    fire(
        b,
        reqwest::Method::POST,
        &format!("/api/v1/lobby/games/{game}/start"),
        &vic,
        None,
    )
    .await;
    (game, vic, admin)
}

async fn status_of_game(db: &TestDb, game: &str, status: &str) -> bool {
    count(
        db,
        &format!("SELECT count(*) AS n FROM games WHERE id = '{game}' AND status = '{status}'"),
    )
    .await
        == 1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_cut_short_by_kill_9_is_announced_once() {
    ensure_engine_image();
    let db = TestDb::new();
    let b = armed(&db, "lobby.game_started").await;
    let (game, _, _) = started_game(&b, &db).await;
    let _engine = EngineGuard(game.clone());
    let b = died_and_restarted(b, "lobby.game_started").await;

    assert!(
        status_of_game(&db, &game, "running").await,
        "the start committed\n{}",
        b.dump()
    );
    // The reconciler adopts the engine and reports it running again: still one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(intents(&db, "lobby.game_started", &game).await, (1, 1, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_cut_short_by_kill_9_is_announced_once() {
    ensure_engine_image();
    let db = TestDb::new();
    let b = armed(&db, "runtime.turn_generated").await;
    let (game, _, admin) = started_game(&b, &db).await;
    let _engine = EngineGuard(game.clone());
    b.eventually(Duration::from_secs(60), "game running", || async {
        status_of_game(&db, &game, "running").await
    })
    .await;
    fire(
        &b,
        reqwest::Method::POST,
        &format!("/api/v1/admin/runtime/{game}/force-next-turn"),
        &admin,
        None,
    )
    .await;
    let b = died_and_restarted(b, "runtime.turn_generated").await;

    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) AS n FROM game_turns WHERE game_id = '{game}'")
        )
        .await,
        1,
        "the turn was recorded\n{}",
        b.dump()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        intents(&db, "runtime.turn_generated", &game).await,
        (1, 1, 2)
    );
    assert_eq!(
        count(&db, &format!(
            "SELECT count(*) AS n FROM notification_intents WHERE kind = 'runtime.turn_generated' \
             AND idempotency_key = '{game}:1'"
        ))
        .await,
        1
    );
}
