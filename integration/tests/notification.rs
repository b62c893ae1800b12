//! Issue 5 against the real binary: the gRPC push listener checks the token,
//! and the notification worker of a running backend pushes a due route to a
//! subscribed gateway (a real tonic client).

use std::time::Duration;

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use galaxy_integration::BackendBuilder;
use galaxy_notification::proto::SubscribeRequest;
use galaxy_notification::proto::push_client::PushClient;
use galaxy_testdb::TestDb;

const TOKEN: &str = "test-push-token-0123456789";

async fn subscribe(
    addr: &str,
    auth: Option<&str>,
) -> Result<tonic::Streaming<galaxy_notification::proto::PushEvent>, tonic::Status> {
    let mut client = PushClient::connect(format!("http://{addr}")).await.unwrap();
    let mut request = tonic::Request::new(SubscribeRequest {
        gateway_id: "integration".to_owned(),
    });
    if let Some(auth) = auth {
        request
            .metadata_mut()
            .insert("authorization", auth.parse().unwrap());
    }
    client
        .subscribe(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backend_pushes_due_routes_to_an_authenticated_gateway() {
    let db = TestDb::new();
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_PUSH_TOKEN", TOKEN)
        .env("BACKEND_NOTIFICATION_WORKER_INTERVAL", "100ms")
        .env("RUST_LOG", "info,galaxy_notification=debug")
        .spawn();
    backend.wait_ready(Duration::from_secs(10)).await;
    let grpc = backend.env("BACKEND_GRPC_LISTEN_ADDR").unwrap().to_owned();

    for auth in [None, Some("Bearer nope".to_owned())] {
        let status = subscribe(&grpc, auth.as_deref()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    let mut stream = subscribe(&grpc, Some(&format!("Bearer {TOKEN}")))
        .await
        .expect("the push token is accepted");

    // A push route left for the worker (as after a submit with no gateway).
    let (account, intent, route) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query("INSERT INTO accounts (id, email, display_name) VALUES ($1, $2, 'P')")
        .bind::<SqlUuid, _>(account)
        .bind::<Text, _>(format!("{}@example.test", account.simple()))
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query(
        "INSERT INTO notification_intents (id, kind, idempotency_key, payload, origin_request_id) \
         VALUES ($1, 'lobby.game_started', 'it', '{\"game_id\": \"x\", \"game_name\": \"G\"}', 'req-origin-7')",
    )
    .bind::<SqlUuid, _>(intent)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(
        "INSERT INTO notification_routes (id, intent_id, channel, account_id) VALUES ($1, $2, 'push', $3)",
    )
    .bind::<SqlUuid, _>(route)
    .bind::<SqlUuid, _>(intent)
    .bind::<SqlUuid, _>(account)
    .execute(&mut conn)
    .await
    .unwrap();

    let ev = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the worker pushes the due route")
        .unwrap()
        .unwrap();
    assert_eq!(ev.route_id, route.to_string());
    assert_eq!(ev.event_id, intent.to_string());
    assert_eq!(ev.account_id, account.to_string());
    assert_eq!(ev.kind, "lobby.game_started");
    // The worker's line names the request that submitted the intent.
    backend
        .eventually(
            Duration::from_secs(3),
            "worker log with the origin request",
            || async {
                backend.logs().iter().any(|l| {
                    l["message"] == "push route delivered by the worker"
                        && l["origin_request_id"] == "req-origin-7"
                })
            },
        )
        .await;

    // The admin routes are mounted, guarded and documented.
    let resp = backend.get("/api/v1/admin/notifications/routes").await;
    assert_eq!(resp.status(), 401, "admin routes need an admin token");
    let doc: serde_json::Value = backend
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/user/notifications"].is_object());
    assert!(doc["paths"]["/api/v1/admin/notifications/routes/{id}/retry"].is_object());

    // Shutdown ends the open push stream instead of waiting for the gateway.
    assert!(backend.terminate(Duration::from_secs(10)).success());
}
