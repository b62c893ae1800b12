//! Shared set-up for the notification tests: a migrated database, accounts
//! inserted with plain SQL, a HashMap recipient directory and an in-process
//! gRPC push server on 127.0.0.1:0.
#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use galaxy_notification::proto::PushEvent;
use galaxy_notification::proto::push_client::PushClient;
use galaxy_notification::{
    Intent, NotificationService, NotificationSettings, PgNotificationService, PushGrpc, PushHub,
    RecipientDirectory, Submitted, subscribe_request,
};
use galaxy_queue::Backoff;
use galaxy_testdb::TestDb;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use uuid::Uuid;

pub const PUSH_TOKEN: &str = "push-token-for-tests-0123456789";

/// Emails by account id; the binary's implementation reads the user cache.
#[derive(Default)]
pub struct Directory(pub std::sync::RwLock<HashMap<Uuid, String>>);

impl RecipientDirectory for Directory {
    fn email(&self, account_id: Uuid) -> Option<String> {
        self.0.read().unwrap().get(&account_id).cloned()
    }
}

pub struct Harness {
    pub db: TestDb,
    pub service: Arc<PgNotificationService>,
    pub directory: Arc<Directory>,
}

/// Short intervals so retry tests take well under a second per attempt.
pub fn fast_settings(max_attempts: u32, admin_email: Option<&str>) -> NotificationSettings {
    let mut s = NotificationSettings::new(
        Duration::from_millis(50),
        max_attempts,
        admin_email.map(str::to_owned),
    );
    s.backoff = Backoff::new(Duration::from_millis(60), Duration::from_millis(120));
    s.lease = Duration::from_millis(300);
    s
}

impl Harness {
    pub fn new(settings: NotificationSettings) -> Self {
        let db = TestDb::new();
        let directory = Arc::new(Directory::default());
        let service = Arc::new(PgNotificationService::new(
            db.pool(),
            PushHub::new(),
            directory.clone(),
            settings,
        ));
        Self {
            db,
            service,
            directory,
        }
    }

    /// An `accounts` row (the routes' foreign key) with an email in the directory.
    pub async fn account(&self, name: &str) -> Uuid {
        let id = Uuid::now_v7();
        let email = format!("{name}-{}@example.test", id.simple());
        let mut conn = self.db.pool().get().await.unwrap();
        diesel::sql_query("INSERT INTO accounts (id, email, display_name) VALUES ($1, $2, $3)")
            .bind::<SqlUuid, _>(id)
            .bind::<Text, _>(&email)
            .bind::<Text, _>(name)
            .execute(&mut conn)
            .await
            .unwrap();
        self.directory.0.write().unwrap().insert(id, email);
        id
    }

    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = self.db.pool().get().await.unwrap();
        diesel::sql_query(sql)
            .get_result::<N>(&mut conn)
            .await
            .unwrap()
            .n
    }

    /// (status, attempts, skip_reason) of every route of `intent_id`, push first.
    /// How many rows `table` holds.
    pub async fn rows(&self, table: &str) -> i64 {
        self.count(&format!("SELECT count(*) AS n FROM {table}"))
            .await
    }

    /// How many intents, routes and mail deliveries there are.
    pub async fn totals(&self) -> (i64, i64, i64) {
        (
            self.rows("notification_intents").await,
            self.rows("notification_routes").await,
            self.rows("mail_deliveries").await,
        )
    }

    /// Submits `intent`, which must succeed.
    pub async fn submit(&self, intent: Intent) -> Submitted {
        self.service.submit(intent).await.unwrap()
    }

    pub async fn routes(&self, intent_id: Uuid) -> Vec<RouteState> {
        let mut conn = self.db.pool().get().await.unwrap();
        diesel::sql_query(
            "SELECT id, channel, status, attempts, skip_reason, account_id, address, mail_delivery_id, last_error \
             FROM notification_routes WHERE intent_id = $1 ORDER BY channel DESC, id",
        )
        .bind::<SqlUuid, _>(intent_id)
        .load(&mut conn)
        .await
        .unwrap()
    }

    /// Polls until every push route of `intent_id` satisfies `done`.
    pub async fn wait_push_routes(
        &self,
        intent_id: Uuid,
        timeout: Duration,
        done: impl Fn(&RouteState) -> bool,
    ) -> Vec<RouteState> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let routes: Vec<_> = self
                .routes(intent_id)
                .await
                .into_iter()
                .filter(|r| r.channel == "push")
                .collect();
            if routes.iter().all(&done) {
                return routes;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "push routes never reached the expected state: {routes:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(diesel::QueryableByName, Debug, Clone)]
pub struct RouteState {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub skip_reason: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    pub account_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub address: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    pub mail_delivery_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub last_error: Option<String>,
}

pub fn member_joined(key: &str, recipients: Vec<Uuid>) -> Intent {
    Intent {
        kind: galaxy_notification::LOBBY_MEMBER_JOINED.to_owned(),
        idempotency_key: key.to_owned(),
        payload: json!({
            "game_id": Uuid::now_v7().to_string(),
            "game_name": "Andromeda",
            "account_id": Uuid::now_v7().to_string(),
            "race_name": "Zorgons",
        }),
        recipients,
    }
}

pub fn start_config_invalid(key: &str) -> Intent {
    Intent {
        kind: galaxy_notification::RUNTIME_START_CONFIG_INVALID.to_owned(),
        idempotency_key: key.to_owned(),
        payload: json!({
            "game_id": Uuid::now_v7().to_string(),
            "engine_version": "1.4.0",
            "reason": "engine exited with code 78",
        }),
        recipients: vec![],
    }
}

/// The push gRPC service on an ephemeral loopback port, stopped on drop.
pub struct GrpcServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn serve_push(hub: Arc<PushHub>) -> GrpcServer {
    serve_push_accepting(hub, &[PUSH_TOKEN]).await
}

/// The push service accepting each of `tokens` (a rotation in progress).
pub async fn serve_push_accepting(hub: Arc<PushHub>, tokens: &[&str]) -> GrpcServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let service = PushGrpc::new(hub, tokens, shutdown.clone()).into_server();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stop.cancelled_owned(),
            )
            .await
            .unwrap();
    });
    GrpcServer { addr, shutdown }
}

/// `Subscribe` with `authorization` set to `auth` (None: no header).
pub async fn subscribe(
    addr: SocketAddr,
    auth: Option<&str>,
) -> Result<Streaming<PushEvent>, tonic::Status> {
    let mut client = PushClient::connect(format!("http://{addr}")).await.unwrap();
    client
        .subscribe(subscribe_request("test-gateway", auth).unwrap())
        .await
        .map(tonic::Response::into_inner)
}

/// `Subscribe` with the push token, which must be accepted.
pub async fn subscribe_with_token(addr: SocketAddr) -> Streaming<PushEvent> {
    subscribe(addr, Some(&format!("Bearer {PUSH_TOKEN}")))
        .await
        .expect("subscribe with the token")
}

/// The harness's push service served, and one gateway subscribed to it.
pub async fn subscribed_gateway(h: &Harness) -> (GrpcServer, Streaming<PushEvent>) {
    let server = serve_push(h.service.hub().clone()).await;
    let stream = subscribe_with_token(server.addr).await;
    wait_subscribers(h.service.hub(), 1).await;
    (server, stream)
}

/// Waits until the hub has `n` live subscribers.
pub async fn wait_subscribers(hub: &PushHub, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.subscriber_count() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscribers never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
