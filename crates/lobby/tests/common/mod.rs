//! Test harness: a real PostgreSQL database (TestDb) and in-test
//! implementations of the lobby's ports (the real adapters are wired and
//! tested by the binary's integration suite).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};
use async_trait::async_trait;
use diesel_async::AsyncPgConnection;
use galaxy_core::testing::TestSessions;
use galaxy_core::{AdminSessionResolver, ApiError, Readiness, RequestContext, UserSessionResolver};
use galaxy_lobby::{
    AccountDirectory, AfterCommit, Game, GameCallError, GameRuntime, GameStartSpec, LobbyNotifier,
    PgLobby, StartError, TurnInfo,
};
use galaxy_testdb::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

/// A runtime that remembers what it was asked and behaves like the
/// reference engine's protocol where the lobby depends on it.
#[derive(Default)]
pub struct FakeRuntime {
    /// version → active
    pub versions: Mutex<Vec<(String, bool)>>,
    pub starts: Mutex<Vec<(GameStartSpec, Uuid)>>,
    pub refuse_start: AtomicBool,
    pub reject_start: AtomicBool,
    pub engine_down: AtomicBool,
    pub turns: Mutex<HashMap<Uuid, u32>>,
    pub orders: Mutex<Vec<(Uuid, String, Value)>>,
}

impl FakeRuntime {
    pub fn set_turn(&self, game: Uuid, turn: u32) {
        self.turns.lock().unwrap().insert(game, turn);
    }
}

#[async_trait]
impl GameRuntime for FakeRuntime {
    fn newest_active_version(&self) -> Option<String> {
        // The list is kept oldest first, as engine versions are added.
        self.versions
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, active)| *active)
            .map(|(v, _)| v.clone())
    }

    fn version_is_active(&self, version: &str) -> bool {
        self.versions
            .lock()
            .unwrap()
            .iter()
            .any(|(v, active)| v == version && *active)
    }

    async fn start(&self, spec: &GameStartSpec, actor: Uuid) -> Result<(), StartError> {
        if self.refuse_start.load(Ordering::SeqCst) {
            return Err(StartError::Unavailable("docker unreachable".into()));
        }
        if self.reject_start.load(Ordering::SeqCst) {
            return Err(StartError::Refused(format!(
                "engine version {} is disabled",
                spec.engine_version
            )));
        }
        self.starts.lock().unwrap().push((spec.clone(), actor));
        Ok(())
    }

    fn current_turn(&self, game_id: Uuid) -> Option<u32> {
        self.turns.lock().unwrap().get(&game_id).copied()
    }

    async fn report(
        &self,
        game_id: Uuid,
        race: &str,
        turn: Option<u32>,
    ) -> Result<Value, GameCallError> {
        if self.engine_down.load(Ordering::SeqCst) {
            return Err(GameCallError::Unavailable("connection refused".into()));
        }
        let latest = self.current_turn(game_id).unwrap_or(0);
        let turn = turn.unwrap_or(latest);
        if turn > latest {
            return Err(GameCallError::NotFound(format!(
                "turn {turn} does not exist yet"
            )));
        }
        Ok(json!({"turn": turn, "race": race, "industry": 10, "ships": 0}))
    }

    async fn submit_orders(
        &self,
        game_id: Uuid,
        race: &str,
        orders: Value,
    ) -> Result<(), GameCallError> {
        if self.engine_down.load(Ordering::SeqCst) {
            return Err(GameCallError::Unavailable("connection refused".into()));
        }
        for o in orders.as_array().into_iter().flatten() {
            match o["type"].as_str() {
                Some("build_ships" | "raise_industry") => {}
                other => {
                    return Err(GameCallError::Rejected(format!(
                        "unknown order type {}",
                        other.unwrap_or("(none)")
                    )));
                }
            }
        }
        self.orders
            .lock()
            .unwrap()
            .push((game_id, race.to_owned(), orders));
        Ok(())
    }

    async fn turns(&self, game_id: Uuid) -> Result<Vec<TurnInfo>, GameCallError> {
        let latest = self.current_turn(game_id).unwrap_or(0);
        Ok((1..=latest)
            .map(|t| TurnInfo {
                turn_no: t,
                generated_at: chrono::Utc::now(),
                duration_ms: 5,
                forced: t == 1,
            })
            .collect())
    }
}

/// One notification: kind, game, the joining account (if any), and how many
/// members the game had when it was sent.
pub type Event = (String, Uuid, Option<Uuid>, usize);

#[derive(Default)]
pub struct FakeNotifier {
    /// Recorded once the lobby's transaction committed (the after-commit part).
    pub events: Arc<Mutex<Vec<Event>>>,
    /// The notification cannot be written (its database is down).
    pub fail: AtomicBool,
}

impl FakeNotifier {
    pub fn kinds(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.0.clone())
            .collect()
    }

    /// The event to record once the lobby's transaction commits, or the
    /// refusal when notifications are down.
    fn record(
        &self,
        kind: &str,
        game: &Game,
        account_id: Option<Uuid>,
    ) -> Result<AfterCommit, ApiError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("notifications down"));
        }
        let event = (kind.to_owned(), game.id, account_id, game.members.len());
        let events = Arc::clone(&self.events);
        Ok(Box::pin(async move { events.lock().unwrap().push(event) }))
    }
}

#[async_trait]
impl LobbyNotifier for FakeNotifier {
    async fn member_joined(
        &self,
        _conn: &mut AsyncPgConnection,
        game: &Game,
        account_id: Uuid,
        _race_name: &str,
    ) -> Result<AfterCommit, ApiError> {
        self.record("lobby.member_joined", game, Some(account_id))
    }

    async fn game_started(
        &self,
        _conn: &mut AsyncPgConnection,
        game: &Game,
    ) -> Result<AfterCommit, ApiError> {
        self.record("lobby.game_started", game, None)
    }
}

#[derive(Default)]
pub struct FakeAccounts {
    pub inactive: Mutex<HashSet<Uuid>>,
}

impl AccountDirectory for FakeAccounts {
    fn is_active(&self, account_id: Uuid) -> bool {
        !self.inactive.lock().unwrap().contains(&account_id)
    }
}

pub use galaxy_core::testing::user_token as token;

pub struct Env {
    pub db: TestDb,
    pub lobby: Arc<PgLobby>,
    pub runtime: Arc<FakeRuntime>,
    pub notifier: Arc<FakeNotifier>,
    pub accounts: Arc<FakeAccounts>,
    pub readiness: Readiness,
}

impl Env {
    /// A migrated database with engine versions `0.9.0` (deprecated),
    /// `1.0.0` and `2.0.0` (active), and a warm lobby over it.
    pub async fn new() -> Self {
        use diesel_async::RunQueryDsl;
        let db = TestDb::new();
        let mut conn = db.pool().get().await.expect("conn");
        diesel::sql_query(
            "INSERT INTO engine_versions (version, image, status) VALUES \
             ('0.9.0', 'galaxy/game:0.9.0', 'deprecated'), \
             ('1.0.0', 'galaxy/game:1.0.0', 'active'), \
             ('2.0.0', 'galaxy/game:2.0.0', 'active')",
        )
        .execute(&mut conn)
        .await
        .expect("engine versions");
        drop(conn);
        let runtime = Arc::new(FakeRuntime::default());
        *runtime.versions.lock().unwrap() = vec![
            ("0.9.0".into(), false),
            ("1.0.0".into(), true),
            ("2.0.0".into(), true),
        ];
        let readiness = Readiness::new();
        let notifier = Arc::new(FakeNotifier::default());
        let accounts = Arc::new(FakeAccounts::default());
        let lobby = PgLobby::new(
            db.pool(),
            runtime.clone(),
            notifier.clone(),
            accounts.clone(),
            readiness.flag("lobby_cache"),
        );
        assert!(!readiness.report().await.ready, "ready before warm");
        lobby.warm().await.expect("warm");
        assert!(readiness.report().await.ready, "warm sets the flag");
        Self {
            db,
            lobby,
            runtime,
            notifier,
            accounts,
            readiness,
        }
    }

    /// Another lobby (another "process") over the same database, warmed.
    pub async fn fresh_lobby(&self) -> Arc<PgLobby> {
        let lobby = PgLobby::new(
            self.db.pool(),
            self.runtime.clone(),
            self.notifier.clone(),
            self.accounts.clone(),
            self.readiness.flag("lobby_cache"),
        );
        lobby.warm().await.expect("warm");
        lobby
    }

    pub async fn sql(&self, sql: &str) {
        use diesel_async::RunQueryDsl;
        let mut conn = self.db.pool().get().await.expect("conn");
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One number from SQL (`SELECT count(*)::bigint AS n …`).
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = self.db.pool().get().await.expect("conn");
        diesel::sql_query(sql)
            .get_result::<N>(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .n
    }

    pub async fn text(&self, sql: &str) -> Option<String> {
        #[derive(diesel::QueryableByName)]
        struct T {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            t: Option<String>,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = self.db.pool().get().await.expect("conn");
        diesel::sql_query(sql)
            .get_result::<T>(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .t
    }

    /// A new active account row.
    pub async fn account(&self) -> Uuid {
        let id = Uuid::now_v7();
        self.sql(&format!(
            "INSERT INTO accounts (id, email, display_name) VALUES ('{id}', 'p{}@example.test', 'Player')",
            id.simple()
        ))
        .await;
        id
    }

    pub async fn accounts(&self, n: usize) -> Vec<Uuid> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.account().await);
        }
        v
    }
}

/// A game-creation body with sane defaults.
pub fn new_game(race: &str, min: i64, max: i64) -> Value {
    json!({
        "name": "Andromeda",
        "race_name": race,
        "min_players": min,
        "max_players": max,
        "turn_interval_seconds": 60,
    })
}

/// The app under test: request ids, the shared extractor config, resolvers
/// and the lobby's routes — the same stack the binary builds.
pub async fn app(
    env: &Env,
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    let sessions = Arc::new(TestSessions);
    let lobby: Arc<dyn galaxy_lobby::LobbyService> = env.lobby.clone();
    test::init_service(
        App::new()
            .wrap(RequestContext)
            .configure(galaxy_core::http::configure_extractors)
            .app_data(web::Data::<dyn UserSessionResolver>::from(
                sessions.clone() as Arc<dyn UserSessionResolver>
            ))
            .app_data(web::Data::<dyn AdminSessionResolver>::from(
                sessions as Arc<dyn AdminSessionResolver>,
            ))
            .configure(|cfg| galaxy_lobby::configure(cfg, lobby)),
    )
    .await
}

/// GET as the user `who`.
pub async fn get<S>(app: &S, path: &str, who: Uuid) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    call(app, "GET", path, Some(&token(who)), None).await
}

/// POST as the user `who`, with an optional JSON body.
pub async fn post<S>(app: &S, path: &str, who: Uuid, body: Option<Value>) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    call(app, "POST", path, Some(&token(who)), body).await
}

/// Creates a game as the user `who` (POST /api/v1/lobby/games).
pub async fn create<S>(app: &S, who: Uuid, body: Value) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    post(app, "/api/v1/lobby/games", who, Some(body)).await
}

/// Sends one request; returns the status and the JSON body (Null if empty).
pub async fn call<S>(
    app: &S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut req = match method {
        "GET" => test::TestRequest::get(),
        "POST" => test::TestRequest::post(),
        "DELETE" => test::TestRequest::delete(),
        "PUT" => test::TestRequest::put(),
        other => panic!("method {other}"),
    }
    .uri(path);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let is_problem = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let bytes = test::read_body(resp).await;
    if status >= 400 {
        assert!(is_problem, "{status} without problem+json: {bytes:?}");
    }
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {bytes:?}"))
    };
    (status, value)
}
