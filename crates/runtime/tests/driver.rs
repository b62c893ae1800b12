//! The container-driver seam: the lifecycle and the reconciler run unchanged
//! on a second driver (a fake here, beside a stand-in engine answering over
//! real HTTP), with a real PostgreSQL. The Docker driver itself is tested
//! against the real daemon in `docker.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use galaxy_runtime::{
    Actor, ContainerDriver, EngineFailureKind, EngineSpec, EngineState, LabelledEngine,
    ObservedState, PullPolicy, Runtime, RuntimeService, container_name,
};
use galaxy_testdb::TestDb;
use support::{Event, Recorder, observed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Fake {
    id: String,
    game_id: Uuid,
    state: EngineState,
}

/// Engines in memory; every call is logged as `method arg`.
#[derive(Default)]
struct FakeDriver {
    endpoint: String,
    /// When set, a created engine has exited with this code at once.
    exit_code: Option<i64>,
    engines: Mutex<HashMap<String, Fake>>,
    /// Listed beside the engines (another process's leftovers).
    strays: Mutex<Vec<LabelledEngine>>,
    calls: Mutex<Vec<String>>,
}

impl FakeDriver {
    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn called(&self, call: &str) -> bool {
        self.calls.lock().unwrap().iter().any(|c| c == call)
    }
    /// The engine by id or name.
    fn find(&self, engine: &str) -> Option<(String, Fake)> {
        let engines = self.engines.lock().unwrap();
        engines
            .iter()
            .find(|(name, f)| *name == engine || f.id == engine)
            .map(|(n, f)| (n.clone(), f.clone()))
    }
    fn set_running(&self, name: &str, running: bool) {
        let mut engines = self.engines.lock().unwrap();
        let fake = engines.get_mut(name).unwrap();
        fake.state.running = running;
    }
}

#[async_trait]
impl ContainerDriver for FakeDriver {
    async fn prepare(&self) -> Result<(), String> {
        Ok(())
    }
    async fn image_present(&self, image: &str) -> Result<bool, String> {
        self.log(format!("image_present {image}"));
        Ok(true)
    }
    async fn pull(&self, image: &str) -> Result<(), String> {
        self.log(format!("pull {image}"));
        Ok(())
    }
    async fn ensure_volume(&self, game_id: Uuid) -> Result<(), String> {
        self.log(format!("ensure_volume {game_id}"));
        Ok(())
    }
    async fn create_and_start(&self, spec: &EngineSpec<'_>) -> Result<String, String> {
        let name = container_name(spec.game_id);
        self.log(format!("create_and_start {name} {}", spec.image));
        let id = Uuid::new_v4().simple().to_string();
        let state = match self.exit_code {
            Some(code) => EngineState {
                running: false,
                exit_code: Some(code),
                endpoint: None,
            },
            None => EngineState {
                running: true,
                exit_code: None,
                endpoint: Some(self.endpoint.clone()),
            },
        };
        let fake = Fake {
            id: id.clone(),
            game_id: spec.game_id,
            state,
        };
        self.engines.lock().unwrap().insert(name, fake);
        Ok(id)
    }
    async fn inspect(&self, engine: &str) -> Result<Option<EngineState>, String> {
        Ok(self.find(engine).map(|(_, f)| f.state))
    }
    async fn stderr_tail(&self, _engine: &str) -> String {
        "start config: no players".into()
    }
    async fn stop_and_remove(&self, engine: &str) -> Result<(), String> {
        self.log(format!("stop_and_remove {engine}"));
        self.strays.lock().unwrap().retain(|s| s.id != engine);
        self.remove(engine).await
    }
    async fn remove(&self, engine: &str) -> Result<(), String> {
        self.log(format!("remove {engine}"));
        if let Some((name, _)) = self.find(engine) {
            self.engines.lock().unwrap().remove(&name);
        }
        Ok(())
    }
    async fn list_labelled(&self) -> Result<Vec<LabelledEngine>, String> {
        let mut list: Vec<LabelledEngine> = self
            .engines
            .lock()
            .unwrap()
            .iter()
            .map(|(name, f)| LabelledEngine {
                id: f.id.clone(),
                name: name.clone(),
                game_id: Some(f.game_id),
                running: f.state.running,
                endpoint: f.state.endpoint.clone().filter(|_| f.state.running),
            })
            .collect();
        list.extend(self.strays.lock().unwrap().iter().cloned());
        Ok(list)
    }
}

/// A stand-in engine: every request gets `200 {"turn":0}` (health, status).
async fn stand_in_engine() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0_u8; 4096];
                if socket.read(&mut buf).await.is_err() {
                    return;
                }
                let body = r#"{"turn":0}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                // The client may already have gone (a poll that timed out).
                socket.write_all(answer.as_bytes()).await.ok();
            });
        }
    });
    (format!("http://{addr}"), task)
}

struct Setup {
    db: TestDb,
    owner: Uuid,
    runtime: Runtime,
    driver: Arc<FakeDriver>,
    events: Arc<Recorder>,
}

async fn setup(driver: FakeDriver) -> Setup {
    let db = TestDb::new();
    let owner = support::seed(&db).await;
    let driver = Arc::new(driver);
    let events = Arc::new(Recorder::default());
    let settings = support::settings("unused-by-the-fake", PullPolicy::IfMissing);
    let runtime = Runtime::with_driver(db.pool(), settings, events.clone(), driver.clone());
    runtime.warm().await.unwrap();
    Setup {
        db,
        owner,
        runtime,
        driver,
        events,
    }
}

async fn wait_state(s: &Setup, game: Uuid, state: ObservedState) {
    observed(&s.runtime, game, state, WAIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lifecycle_and_the_reconciler_run_on_a_second_driver() {
    let (endpoint, engine) = stand_in_engine().await;
    let s = setup(FakeDriver {
        endpoint: endpoint.clone(),
        ..FakeDriver::default()
    })
    .await;
    let game = support::insert_game(&s.db, s.owner).await;
    let name = container_name(game);

    s.runtime
        .start_game(support::request(game, "1.0.0"), Actor::System)
        .await
        .unwrap();
    wait_state(&s, game, ObservedState::Running).await;
    let record = s.runtime.record(game).unwrap();
    assert_eq!(record.endpoint.as_deref(), Some(endpoint.as_str()));
    assert!(s.events.all().contains(&Event::Running(game)));
    for call in [
        format!("image_present {}", support::IMAGE),
        format!("ensure_volume {game}"),
        format!("remove {name}"),
        format!("create_and_start {name} {}", support::IMAGE),
    ] {
        assert!(s.driver.called(&call), "{call} not in {:?}", s.driver.calls);
    }
    assert!(!s.driver.called(&format!("pull {}", support::IMAGE)));

    // Steady: nothing to do.
    let report = s.runtime.reconcile_once().await.unwrap();
    assert_eq!((report.containers, report.records), (1, 1), "{report:?}");
    assert_eq!(report.restarted + report.orphans_removed, 0, "{report:?}");

    // A stray labelled engine with no record goes; the game's stays.
    s.driver.strays.lock().unwrap().push(LabelledEngine {
        id: "stray-id".into(),
        name: "galaxy-game-stray".into(),
        game_id: Some(Uuid::now_v7()),
        running: true,
        endpoint: None,
    });
    let report = s.runtime.reconcile_once().await.unwrap();
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    assert!(s.driver.called("stop_and_remove stray-id"));
    assert!(s.driver.find(&name).is_some());

    // The engine stopped behind our back: the reconciler starts a new one.
    s.driver.set_running(&name, false);
    let report = s.runtime.reconcile_once().await.unwrap();
    assert_eq!(report.restarted, 1, "{report:?}");
    assert!(s.driver.find(&name).is_some_and(|(_, f)| f.state.running));
    assert_eq!(
        s.runtime.record(game).unwrap().observed_state,
        ObservedState::Running
    );

    s.runtime.stop_game(game, Actor::System).await.unwrap();
    wait_state(&s, game, ObservedState::Absent).await;
    assert!(s.driver.called(&format!("stop_and_remove {name}")));
    assert!(s.driver.find(&name).is_none());
    engine.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_exiting_78_on_a_second_driver_is_start_config_invalid() {
    let s = setup(FakeDriver {
        exit_code: Some(78),
        ..FakeDriver::default()
    })
    .await;
    let game = support::insert_game(&s.db, s.owner).await;
    s.runtime
        .start_game(support::request(game, "1.0.0"), Actor::System)
        .await
        .unwrap();
    wait_state(&s, game, ObservedState::Failed).await;
    let failure = s.events.failure(game).expect("a failure event");
    assert_eq!(failure.kind, EngineFailureKind::StartConfigInvalid);
    assert!(
        failure.reason.contains("exited with code 78"),
        "{failure:?}"
    );
    assert!(failure.reason.contains("no players"), "{failure:?}");
    // The exited engine was removed; nothing is left running.
    assert!(s.driver.find(&container_name(game)).is_none());
}
