//! Shared test harness: the real Docker daemon, the reference engine image,
//! a migrated test database, and a guard that removes every container,
//! volume and network a test created — also when it fails.

#![allow(dead_code)] // each test binary uses a different part

use std::process::Command;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use async_trait::async_trait;
use diesel_async::RunQueryDsl;
use galaxy_runtime::{
    Actor, AfterCommit, EngineFailure, ObservedState, Operation, PullPolicy, ResourceLimits,
    Runtime, RuntimeEvents, RuntimeService, RuntimeSettings, StartPlayer, StartRequest,
};
use galaxy_testdb::TestDb;
use uuid::Uuid;

pub const IMAGE: &str = "galaxy/game:integration";
pub const IMAGE_V2: &str = "galaxy/game:integration-v2";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI must be installed for the runtime tests")
}

/// Builds the engine image once per test process when it is missing, and
/// tags a second version for patch tests. Fails loudly without Docker.
pub fn ensure_images() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let info = docker(&["info", "--format", "{{.ServerVersion}}"]);
        assert!(
            info.status.success(),
            "no Docker daemon answers: the runtime tests need one ({})",
            String::from_utf8_lossy(&info.stderr)
        );
        if !docker(&["image", "inspect", IMAGE]).status.success() {
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../integration/engine/build-image.sh"
            );
            let out = Command::new(script)
                .arg("integration")
                .output()
                .expect("run build-image.sh");
            assert!(
                out.status.success(),
                "build-image.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !docker(&["image", "inspect", IMAGE_V2]).status.success() {
            assert!(docker(&["tag", IMAGE, IMAGE_V2]).status.success());
        }
    });
}

/// What the runtime reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Running(Uuid),
    Stopped(Uuid),
    Failed(Uuid, EngineFailure),
    Turn(Uuid, u32, bool),
}

#[derive(Default)]
pub struct Recorder {
    /// A turn is recorded once its transaction committed (after-commit part).
    pub events: Arc<Mutex<Vec<Event>>>,
}

#[async_trait]
impl RuntimeEvents for Recorder {
    async fn engine_running(&self, game_id: Uuid) {
        self.events.lock().unwrap().push(Event::Running(game_id));
    }
    async fn engine_stopped(&self, game_id: Uuid) {
        self.events.lock().unwrap().push(Event::Stopped(game_id));
    }
    async fn engine_failed(&self, game_id: Uuid, failure: EngineFailure) {
        self.events
            .lock()
            .unwrap()
            .push(Event::Failed(game_id, failure));
    }
    async fn turn_generated(
        &self,
        _conn: &mut diesel_async::AsyncPgConnection,
        game_id: Uuid,
        turn: u32,
        forced: bool,
    ) -> Result<AfterCommit, galaxy_core::ApiError> {
        let events = Arc::clone(&self.events);
        Ok(Box::pin(async move {
            events
                .lock()
                .unwrap()
                .push(Event::Turn(game_id, turn, forced));
        }))
    }
}

impl Recorder {
    pub fn all(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The first `engine_failed` reported for the game, if any.
    pub fn failure(&self, game: Uuid) -> Option<EngineFailure> {
        self.all().into_iter().find_map(|e| match e {
            Event::Failed(g, f) if g == game => Some(f),
            _ => None,
        })
    }
}

/// Removes the test's containers, volumes and network on drop.
pub struct DockerGuard {
    pub network: String,
    pub games: Mutex<Vec<Uuid>>,
    pub extra_containers: Mutex<Vec<String>>,
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let games = self
            .games
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut names: Vec<String> = games
            .iter()
            .map(|g| galaxy_runtime::container_name(*g))
            .collect();
        names.extend(
            self.extra_containers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        for chunk in names.chunks(50) {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = docker(&args);
        }
        let volumes: Vec<String> = games
            .iter()
            .map(|g| galaxy_runtime::volume_name(*g))
            .collect();
        for chunk in volumes.chunks(50) {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

pub struct Harness {
    pub db: TestDb,
    pub runtime: Runtime,
    pub events: Arc<Recorder>,
    pub guard: DockerGuard,
    pub owner: Uuid,
}

pub fn settings(network: &str, policy: PullPolicy) -> RuntimeSettings {
    RuntimeSettings {
        docker_host: "unix:///var/run/docker.sock".into(),
        network: network.into(),
        pull_policy: policy,
        start_timeout: Duration::from_secs(20),
        reconcile_interval: Duration::from_secs(60),
        turn_tick_interval: Duration::from_millis(200),
        limits: ResourceLimits::default(),
    }
}

impl Harness {
    pub async fn new(policy: PullPolicy) -> Self {
        ensure_images();
        let db = TestDb::new();
        let network = format!("galaxy-test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let guard = DockerGuard {
            network: network.clone(),
            games: Mutex::new(Vec::new()),
            extra_containers: Mutex::new(Vec::new()),
        };
        let owner = seed(&db).await;
        let events = Arc::new(Recorder::default());
        let runtime = Runtime::new(db.pool(), settings(&network, policy), events.clone()).unwrap();
        runtime
            .warm()
            .await
            .expect("runtime warm-up (Docker + database)");
        Self {
            db,
            runtime,
            events,
            guard,
            owner,
        }
    }

    /// Inserts a game row (the runtime's tables reference it).
    pub async fn game(&self) -> Uuid {
        let id = insert_game(&self.db, self.owner).await;
        self.guard.games.lock().unwrap().push(id);
        id
    }

    pub fn request(&self, game_id: Uuid, version: &str) -> StartRequest {
        request(game_id, version)
    }

    /// Another warmed runtime (another "process") on the same database and
    /// network.
    pub async fn second_process(&self) -> Runtime {
        let other = Runtime::new(
            self.db.pool(),
            settings(&self.guard.network, PullPolicy::IfMissing),
            self.events.clone(),
        )
        .unwrap();
        other.warm().await.unwrap();
        other
    }

    /// Starts the request's game and waits until it is observed in `state`;
    /// returns the start operation's id.
    pub async fn start_until(&self, req: StartRequest, actor: Actor, state: ObservedState) -> Uuid {
        let game = req.game_id;
        let op = self.runtime.start_game(req, actor).await.unwrap();
        self.wait_state(game, state).await;
        op
    }

    /// The owner starts the game on `version` (the standard request); waits
    /// until it is observed in `state` and returns the operation's id.
    pub async fn start_as_owner(&self, game: Uuid, version: &str, state: ObservedState) -> Uuid {
        let req = self.request(game, version);
        self.start_until(req, Actor::Account(self.owner), state)
            .await
    }

    /// Waits until the game's record is observed in `state` (30 s at most).
    pub async fn wait_state(&self, game: Uuid, state: ObservedState) {
        observed(&self.runtime, game, state, Duration::from_secs(30)).await;
    }

    /// The game's operation log, newest first (the first page).
    pub async fn operations(&self, game_id: Uuid) -> Vec<Operation> {
        self.runtime
            .operations(game_id, galaxy_core::Page::default())
            .await
            .unwrap()
            .items
    }

    /// Polls `check` until it holds or `timeout` passes.
    pub async fn eventually<F: FnMut() -> bool>(&self, timeout: Duration, what: &str, check: F) {
        eventually(timeout, what, check).await;
    }
}

/// The owner account and the engine versions 1.0.0, 2.0.0 and 9.9.9 (an
/// absent image); returns the owner.
pub async fn seed(db: &TestDb) -> Uuid {
    let owner = Uuid::now_v7();
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO accounts (id, email, display_name) VALUES ('{owner}', 'owner-{owner}@example.com', 'Owner')"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(format!(
        "INSERT INTO engine_versions (version, image, created_at) VALUES
           ('1.0.0', '{IMAGE}', now() - interval '1 minute'), ('2.0.0', '{IMAGE_V2}', now()),
           ('9.9.9', 'galaxy/game:absent-{owner}', now() - interval '2 minutes');"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    owner
}

/// Inserts a game row (the runtime's tables reference it).
pub async fn insert_game(db: &TestDb, owner: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO games (id, name, owner_id, engine_version, status, min_players, max_players, turn_interval_seconds)
         VALUES ('{id}', 'test', '{owner}', '1.0.0', 'starting', 1, 4, 3600)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    id
}

pub fn request(game_id: Uuid, version: &str) -> StartRequest {
    StartRequest {
        game_id,
        engine_version: version.into(),
        players: vec![
            StartPlayer {
                account_id: Uuid::from_u128(1),
                race_name: "Zorg".into(),
            },
            StartPlayer {
                account_id: Uuid::from_u128(2),
                race_name: "Humans".into(),
            },
        ],
        settings: serde_json::json!({}),
        turn_interval_seconds: 3600,
    }
}

/// Waits until the runtime's record of the game is observed in `state`.
pub async fn observed(runtime: &Runtime, game: Uuid, state: ObservedState, timeout: Duration) {
    eventually(timeout, &format!("{game} observed {state}"), || {
        runtime
            .record(game)
            .is_some_and(|r| r.observed_state == state)
    })
    .await;
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn inspect(name: &str, format: &str) -> String {
    let out = docker(&["inspect", "-f", format, name]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn docker_cmd(args: &[&str]) -> bool {
    docker(args).status.success()
}
