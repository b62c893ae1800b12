//! Two backends on one database (SYSTEM.md §12), with the real Docker
//! daemon and the reference engine: one leader runs the reconciler and the
//! turn scheduler; a game started on the follower keeps its one engine (the
//! leader reads the records from the database, so the peer's new engine is
//! never an orphan); when the leader is killed -9 the other takes over
//! within seconds and turns go on, each recorded once.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::{Duration, Instant};

use galaxy_integration::api::{get, json_of, post, sign_in};
use galaxy_integration::engines::{
    ENGINE_IMAGE, EngineGuard, admin_login, docker, ensure_engine_image, register_engine,
};
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_testdb::TestDb;
use galaxy_testdb::count;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "an-admin-password-for-tests";

fn backend(db: &TestDb, network: Option<&str>) -> BackendBuilder {
    let b = BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .env("BACKEND_RUNTIME_TURN_TICK_INTERVAL", "500ms")
        .env("BACKEND_RUNTIME_RECONCILE_INTERVAL", "500ms")
        .env("BACKEND_RUNTIME_START_TIMEOUT", "30s");
    match network {
        Some(n) => b.env("BACKEND_DOCKER_NETWORK", n),
        None => b,
    }
}

async fn leads(b: &Backend) -> Option<bool> {
    let r = b.client.get(b.url("/readyz")).send().await.ok()?;
    r.json::<Value>().await.ok()?["leader"].as_bool()
}

/// How many containers of `game_id` exist (running or not).
fn containers_of(game_id: &str) -> usize {
    let out = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=galaxy.game_id={game_id}"),
    ]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_keeps_a_peers_engine_and_a_successor_keeps_the_turns() {
    ensure_engine_image();
    let db = TestDb::new();
    // The leader starts first (the first to try the lock takes it).
    let mut leader = backend(&db, None).spawn();
    leader.wait_ready(Duration::from_secs(15)).await;
    let network = leader.env("BACKEND_DOCKER_NETWORK").unwrap().to_owned();
    let mut follower = backend(&db, Some(&network)).spawn();
    follower.wait_ready(Duration::from_secs(15)).await;
    assert_eq!(leads(&leader).await, Some(true), "{}", leader.dump());
    assert_eq!(leads(&follower).await, Some(false));

    // Everything happens on the follower; only the leader reconciles.
    let f = &follower;
    let admin = admin_login(f, "admin", ADMIN_PASSWORD).await;
    register_engine(f, &admin, "1.0.0", ENGINE_IMAGE).await;
    let (alice, _) = sign_in(f, &db, "alice@example.test").await;
    let r = post(
        f,
        "/api/v1/lobby/games",
        &alice,
        Some(json!({
            "name": "Two backends", "race_name": "Vega", "min_players": 1,
            "max_players": 2, "turn_interval_seconds": 10
        })),
    )
    .await;
    let id = json_of(r, 201).await["id"].as_str().unwrap().to_owned();
    let _engine = EngineGuard(id.clone());
    let start = format!("/api/v1/lobby/games/{id}/start");
    let r = post(f, &start, &alice, None).await;
    assert_eq!(r.status(), 202);

    // From the moment its container exists, it exists — one, never zero —
    // while the leader reconciles every 0.5 s.
    let began = Instant::now();
    let mut seen = Vec::new();
    while began.elapsed() < Duration::from_secs(12) {
        seen.push(containers_of(&id));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first = seen
        .iter()
        .position(|n| *n > 0)
        .expect("the engine started");
    assert!(
        seen[first..].iter().all(|n| *n == 1),
        "containers seen every 0.25 s: {seen:?}\n{}",
        leader.dump()
    );
    let starts = format!(
        "SELECT count(*) AS n FROM runtime_operation_log \
         WHERE game_id = '{id}' AND operation = 'start'"
    );
    assert_eq!(count(&db, &starts).await, 1, "one start operation");

    // kill -9 of the leader: the follower leads within 5 s.
    let turns_before = count(
        &db,
        &format!("SELECT count(*) AS n FROM game_turns WHERE game_id = '{id}'"),
    )
    .await;
    leader.kill_hard();
    let killed = Instant::now();
    f.eventually(Duration::from_secs(5), "the follower leads", || async {
        leads(f).await == Some(true)
    })
    .await;
    let took = killed.elapsed();

    // Turns go on (one every 10 s), each recorded once, matching the engine.
    f.eventually(Duration::from_secs(40), "two more turns", || async {
        count(
            &db,
            &format!("SELECT count(*) AS n FROM game_turns WHERE game_id = '{id}'"),
        )
        .await
            >= turns_before + 2
    })
    .await;
    // (game_id, turn_no) is the primary key: a turn recorded twice would
    // have failed its transaction; none is missing either.
    let gaps = count(
        &db,
        &format!(
            "SELECT (max(turn_no) - min(turn_no) + 1 - count(*))::bigint AS n \
             FROM game_turns WHERE game_id = '{id}'"
        ),
    )
    .await;
    assert_eq!(gaps, 0, "turns are consecutive");
    let newest = count(
        &db,
        &format!(
            "SELECT coalesce(max(turn_no), 0)::bigint AS n FROM game_turns WHERE game_id = '{id}'"
        ),
    )
    .await;
    let report = get(f, &format!("/api/v1/games/{id}/report"), &alice).await;
    let report = json_of(report, 200).await;
    assert_eq!(report["turn"].as_i64(), Some(newest), "{report}");
    assert_eq!(containers_of(&id), 1);
    eprintln!("the follower led {took:?} after the leader was killed");
}
