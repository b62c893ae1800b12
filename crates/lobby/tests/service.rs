//! The lobby service against real PostgreSQL: reactions to other modules,
//! racing joins, and the cache staying in step with what committed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::sync::Arc;

use common::Env;
use galaxy_lobby::{
    CreateGame, GameStatus, GameView, JoinGame, LobbyError, LobbyEvents, LobbyService, MemberRole,
    PgLobby,
};
use tokio::task::JoinHandle;
use uuid::Uuid;

fn create(race: &str, min: i64, max: i64) -> CreateGame {
    CreateGame {
        name: "Andromeda".into(),
        race_name: race.into(),
        min_players: min,
        max_players: max,
        turn_interval_seconds: 60,
        engine_version: None,
        settings: None,
    }
}

fn join(race: &str) -> JoinGame {
    JoinGame {
        race_name: race.into(),
    }
}

/// A new open game owned by `owner`, created through the service.
async fn open_game(lobby: &PgLobby, owner: Uuid, race: &str, min: i64, max: i64) -> GameView {
    lobby
        .create_game(owner, create(race, min, max))
        .await
        .unwrap()
}

/// An open game of `max` seats (its owner holds one) and `players` other
/// accounts to race for the rest.
async fn race_setup(players: usize, max: i64) -> (Env, GameView, Vec<Uuid>) {
    let env = Env::new().await;
    let owner = env.account().await;
    let players = env.accounts(players).await;
    let game = open_game(&env.lobby, owner, "Owner", 1, max).await;
    (env, game, players)
}

/// Every player joins the game at once through the one lobby, player `i`
/// as `race(i)`.
fn join_at_once(
    env: &Env,
    game_id: Uuid,
    players: &[Uuid],
    race: impl Fn(usize) -> String,
) -> Vec<JoinHandle<Result<GameView, LobbyError>>> {
    players
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let (lobby, req) = (env.lobby.clone(), join(&race(i)));
            tokio::spawn(async move { lobby.join_game(game_id, p, req).await })
        })
        .collect()
}

/// Waits for the racing joins: exactly one took a seat, every other was
/// refused with `code`.
async fn exactly_one_joined(tasks: Vec<JoinHandle<Result<GameView, LobbyError>>>, code: &str) {
    let results: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.code() == code),
        "{results:?}"
    );
}

/// How many members hold a seat in the game, as the database has it.
async fn seated(env: &Env, game_id: Uuid) -> i64 {
    env.count(&format!(
        "SELECT count(*) AS n FROM game_members WHERE game_id = '{game_id}' AND left_at IS NULL"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_reports_move_the_status() {
    let env = Env::new().await;
    let [owner, bob] = env.accounts(2).await.try_into().unwrap();
    let lobby = &env.lobby;
    let game = open_game(lobby, owner, "Zorg", 2, 2).await;
    lobby.join_game(game.id, bob, join("Bob")).await.unwrap();
    let status = |l: &Arc<PgLobby>| l.game(game.id).unwrap().status;

    // reports for a game that is not starting change nothing
    assert!(!lobby.engine_running(game.id).await.unwrap());
    assert!(!lobby.engine_failed(game.id, "late").await.unwrap());
    assert!(!lobby.engine_running(Uuid::now_v7()).await.unwrap());
    assert_eq!(status(lobby), GameStatus::Open);

    // a failed start puts the game back in the lobby, roster intact
    lobby.start_game(game.id, owner).await.unwrap();
    assert_eq!(status(lobby), GameStatus::Starting);
    assert!(
        lobby
            .engine_failed(game.id, "image pull failed")
            .await
            .unwrap()
    );
    assert_eq!(status(lobby), GameStatus::Open);
    assert_eq!(lobby.game(game.id).unwrap().members.len(), 2);
    assert!(lobby.game(game.id).unwrap().started_at.is_none());
    assert!(
        !lobby.engine_failed(game.id, "again").await.unwrap(),
        "idempotent"
    );
    assert!(
        env.notifier
            .kinds()
            .iter()
            .all(|k| k != "lobby.game_started")
    );

    // the owner retries; this time the engine comes up
    lobby.start_game(game.id, owner).await.unwrap();
    assert_eq!(env.runtime.starts.lock().unwrap().len(), 2);
    assert!(lobby.engine_running(game.id).await.unwrap());
    let running = lobby.game(game.id).unwrap();
    assert_eq!(running.status, GameStatus::Running);
    assert!(running.started_at.is_some());
    // a repeated report (the reconciler restarting it) neither re-notifies nor moves it
    assert!(!lobby.engine_running(game.id).await.unwrap());
    assert!(!lobby.engine_failed(game.id, "crashed later").await.unwrap());
    assert_eq!(status(lobby), GameStatus::Running);
    let started: Vec<_> = env
        .notifier
        .kinds()
        .into_iter()
        .filter(|k| k == "lobby.game_started")
        .collect();
    assert_eq!(started.len(), 1);

    // the database agrees with the cache
    assert_eq!(
        env.text("SELECT status AS t FROM games").await.as_deref(),
        Some("running")
    );
    let fresh = env.fresh_lobby().await;
    assert_eq!(fresh.game(game.id), lobby.game(game.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_engine_pauses_the_game_and_its_restart_resumes_it() {
    let env = Env::new().await;
    let [owner] = env.accounts(1).await.try_into().unwrap();
    let lobby = &env.lobby;
    let game = open_game(lobby, owner, "Zorg", 1, 2).await;
    let status = |l: &Arc<PgLobby>| l.game(game.id).unwrap().status;
    assert!(
        !lobby.engine_stopped(game.id).await.unwrap(),
        "open: no engine"
    );
    lobby.start_game(game.id, owner).await.unwrap();
    assert!(lobby.engine_running(game.id).await.unwrap());

    assert!(lobby.engine_stopped(game.id).await.unwrap());
    assert_eq!(status(lobby), GameStatus::Paused);
    assert!(!lobby.engine_stopped(game.id).await.unwrap(), "idempotent");
    assert_eq!(
        env.text("SELECT status AS t FROM games").await.as_deref(),
        Some("paused")
    );
    assert_eq!(env.fresh_lobby().await.game(game.id), lobby.game(game.id));

    // The operator starts the engine again: running, no second "game started".
    assert!(lobby.engine_running(game.id).await.unwrap());
    assert_eq!(status(lobby), GameStatus::Running);
    assert_eq!(
        env.text("SELECT status AS t FROM games").await.as_deref(),
        Some("running")
    );
    let started = env
        .notifier
        .kinds()
        .into_iter()
        .filter(|k| k == "lobby.game_started")
        .count();
    assert_eq!(started, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_user_leaves_open_games_and_their_own_are_cancelled() {
    let env = Env::new().await;
    let [alice, bob, carol] = env.accounts(3).await.try_into().unwrap();
    let lobby = &env.lobby;
    let owned = open_game(lobby, alice, "Alice", 1, 4).await;
    lobby.join_game(owned.id, bob, join("Bob")).await.unwrap();
    let joined = open_game(lobby, bob, "Bob", 1, 4).await;
    lobby
        .join_game(joined.id, alice, join("Alice"))
        .await
        .unwrap();
    let started = open_game(lobby, carol, "Carol", 1, 4).await;
    lobby
        .join_game(started.id, alice, join("Alice"))
        .await
        .unwrap();
    lobby.start_game(started.id, carol).await.unwrap();
    lobby.engine_running(started.id).await.unwrap();
    let untouched = open_game(lobby, carol, "Carol", 1, 4).await;

    assert_eq!(lobby.user_deleted(alice).await.unwrap(), 2);

    let g = lobby.game(owned.id).unwrap();
    assert_eq!(g.status, GameStatus::Cancelled);
    assert!(g.member(alice).is_none());
    assert!(
        g.member(bob).is_some(),
        "the others' rows stay for the record"
    );
    let g = lobby.game(joined.id).unwrap();
    assert_eq!(g.status, GameStatus::Open);
    assert!(g.member(alice).is_none());
    assert_eq!(g.members.len(), 1);
    let g = lobby.game(started.id).unwrap();
    assert_eq!(g.status, GameStatus::Running);
    assert!(g.member(alice).is_some(), "a running game keeps the race");
    assert_eq!(lobby.game(untouched.id).unwrap().members.len(), 1);

    assert_eq!(
        env.count(&format!(
            "SELECT count(*) AS n FROM game_members WHERE account_id = '{alice}' AND left_at IS NOT NULL"
        ))
        .await,
        2
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM games WHERE status = 'cancelled'")
            .await,
        1
    );
    assert_eq!(lobby.user_deleted(alice).await.unwrap(), 0, "idempotent");
    let fresh = env.fresh_lobby().await;
    for id in [owned.id, joined.id, started.id, untouched.id] {
        assert_eq!(fresh.game(id), lobby.game(id));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_joins_for_the_last_seat_seat_exactly_one() {
    let (env, game, players) = race_setup(10, 2).await;
    let tasks = join_at_once(&env, game.id, &players, |i| format!("Race{i}"));
    exactly_one_joined(tasks, "game_full").await;
    let g = env.lobby.game(game.id).unwrap();
    assert_eq!(g.members.len(), 2);
    assert_eq!(seated(&env, game.id).await, 2);
}

/// Ten processes (ten lobbies with their own caches and locks) racing for one
/// seat: only the database row lock stands between them and an overfull game.
#[tokio::test(flavor = "multi_thread")]
async fn racing_processes_cannot_overfill_a_game() {
    let (env, game, players) = race_setup(10, 2).await;
    let mut lobbies = Vec::new();
    for _ in 0..10 {
        lobbies.push(env.fresh_lobby().await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = players
        .iter()
        .zip(lobbies)
        .map(|(&p, lobby)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                lobby.join_game(game.id, p, join("Same")).await
            })
        })
        .collect();
    exactly_one_joined(tasks, "game_full").await;
    assert_eq!(seated(&env, game.id).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_joins_with_one_race_name_seat_one() {
    let (env, game, players) = race_setup(6, 16).await;
    // the same name in different cases
    let tasks = join_at_once(&env, game.id, &players, |i| {
        (if i % 2 == 0 { "Twins" } else { "tWINS" }).to_owned()
    });
    exactly_one_joined(tasks, "race_name_taken").await;
}

/// The commit itself fails (a deferred constraint trigger raises at COMMIT):
/// the caller gets an error and the cache still shows what the database has.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_leaves_the_cache_as_it_was() {
    let env = Env::new().await;
    let [owner, bob] = env.accounts(2).await.try_into().unwrap();
    let lobby = &env.lobby;
    let game = open_game(lobby, owner, "Zorg", 1, 4).await;
    let before = lobby.game(game.id).unwrap();
    env.sql(
        "CREATE FUNCTION lobby_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'refused at commit'; END $$",
    )
    .await;
    env.sql(
        "CREATE CONSTRAINT TRIGGER refuse_members AFTER INSERT OR UPDATE ON game_members \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lobby_test_refuse()",
    )
    .await;
    env.sql(
        "CREATE CONSTRAINT TRIGGER refuse_games AFTER INSERT OR UPDATE ON games \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lobby_test_refuse()",
    )
    .await;

    let err = lobby
        .join_game(game.id, bob, join("Bob"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "internal");
    let err = lobby.cancel_game(game.id, owner).await.unwrap_err();
    assert_eq!(err.code(), "internal");
    let err = lobby.start_game(game.id, owner).await.unwrap_err();
    assert_eq!(err.code(), "internal");
    assert!(
        env.runtime.starts.lock().unwrap().is_empty(),
        "nothing started"
    );
    let err = lobby
        .create_game(bob, create("Bob", 1, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "internal");
    assert_eq!(
        lobby.user_deleted(owner).await.unwrap_err().code(),
        "internal"
    );

    assert_eq!(lobby.game(game.id).unwrap(), before);
    assert_eq!(
        lobby.list_games(None, galaxy_core::Page::default()).total,
        1
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM game_members").await, 1);

    // the database recovers: the same operation now succeeds and is cached
    env.sql("DROP TRIGGER refuse_members ON game_members").await;
    env.sql("DROP TRIGGER refuse_games ON games").await;
    let g = lobby.join_game(game.id, bob, join("Bob")).await.unwrap();
    assert_eq!(g.members.len(), 2);
    assert_eq!(g.members[1].role, MemberRole::Player);
}

/// PostgreSQL stops: writes answer 503 (`unavailable`), reads keep being
/// served from the cache, nothing in the cache moves; once the server is back
/// the same write succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn database_down_is_503_and_reads_still_work() {
    use diesel_async::RunQueryDsl;
    let server = tokio::task::spawn_blocking(galaxy_testdb::PrivateServer::start)
        .await
        .unwrap();
    let url = galaxy_db::DatabaseUrl::parse(
        &format!("{}?search_path=backend", server.admin_url()),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    galaxy_db::migrate(&url).await.expect("migrate");
    let pool = galaxy_db::build_pool(
        &url,
        galaxy_db::PoolSettings {
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_secs(1),
        },
    );
    let (owner, bob) = (Uuid::now_v7(), Uuid::now_v7());
    {
        let mut conn = pool.get().await.unwrap();
        for sql in [
            "INSERT INTO engine_versions (version, image) VALUES ('1.0.0', 'galaxy/game:1')"
                .to_owned(),
            format!(
                "INSERT INTO accounts (id, email, display_name) VALUES \
                 ('{owner}', 'o@example.test', 'O'), ('{bob}', 'b@example.test', 'B')"
            ),
        ] {
            diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        }
    }
    let runtime = Arc::new(common::FakeRuntime::default());
    runtime
        .versions
        .lock()
        .unwrap()
        .push(("1.0.0".into(), true));
    let readiness = galaxy_core::Readiness::new();
    let lobby = PgLobby::new(
        pool,
        runtime,
        Arc::new(common::FakeNotifier::default()),
        Arc::new(common::FakeAccounts::default()),
        readiness.flag("lobby_cache"),
    );
    lobby.warm().await.unwrap();
    let game = open_game(&lobby, owner, "Zorg", 1, 4).await;
    let before = lobby.game(game.id).unwrap();

    server.stop();
    let err = lobby
        .join_game(game.id, bob, join("Bob"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    let api: galaxy_core::ApiError = err.into();
    assert_eq!(api.code(), "unavailable");
    assert_eq!(lobby.game(game.id).unwrap(), before);
    assert!(
        lobby.game_view(game.id).is_some(),
        "reads are served from the cache"
    );
    assert_eq!(
        lobby
            .create_game(bob, create("Bob", 1, 2))
            .await
            .unwrap_err()
            .code(),
        "unavailable"
    );

    server.start_again();
    let mut joined = None;
    for _ in 0..50 {
        match lobby.join_game(game.id, bob, join("Bob")).await {
            Ok(g) => {
                joined = Some(g);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), "unavailable", "{e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(joined.expect("join after restart").members.len(), 2);
}

/// Decision HARD-14: the notification is written in the change's
/// transaction, so one that cannot be written rolls the change back.
#[tokio::test(flavor = "multi_thread")]
async fn a_notification_that_cannot_be_written_rolls_its_change_back() {
    use std::sync::atomic::Ordering;
    let env = Env::new().await;
    let [owner, bob] = env.accounts(2).await.try_into().unwrap();
    let lobby = &env.lobby;
    let game = open_game(lobby, owner, "Zorg", 2, 2).await;
    env.notifier.fail.store(true, Ordering::SeqCst);
    let e = lobby
        .join_game(game.id, bob, join("Bob"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unavailable");
    assert_eq!(lobby.game(game.id).unwrap().members.len(), 1, "cache");
    env.notifier.fail.store(false, Ordering::SeqCst);
    lobby.join_game(game.id, bob, join("Bob")).await.unwrap();

    lobby.start_game(game.id, owner).await.unwrap();
    env.notifier.fail.store(true, Ordering::SeqCst);
    assert!(lobby.engine_running(game.id).await.is_err());
    assert_eq!(lobby.game(game.id).unwrap().status, GameStatus::Starting);
    env.notifier.fail.store(false, Ordering::SeqCst);
    assert!(lobby.engine_running(game.id).await.unwrap());
    assert_eq!(lobby.game(game.id).unwrap().status, GameStatus::Running);
    // Announced once each, after the commits that held.
    assert_eq!(
        env.notifier.kinds(),
        ["lobby.member_joined", "lobby.game_started"]
    );
    // What the database holds agrees with the cache: a fresh lobby sees
    // the same two members.
    let again = env.fresh_lobby().await;
    assert_eq!(again.game(game.id).unwrap().members.len(), 2);
}
