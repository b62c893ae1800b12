//! Issue 5 against the real binary: the gRPC push listener checks the token,
//! and the notification worker of a running backend pushes a due route to a
//! subscribed gateway (a real tonic client).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use galaxy_integration::BackendBuilder;
use galaxy_notification::proto::push_client::PushClient;
use galaxy_notification::subscribe_request;
use galaxy_testdb::TestDb;

const TOKEN: &str = "test-push-token-0123456789";

async fn subscribe(
    addr: &str,
    auth: Option<&str>,
) -> Result<tonic::Streaming<galaxy_notification::proto::PushEvent>, tonic::Status> {
    let mut client = PushClient::connect(format!("http://{addr}")).await.unwrap();
    client
        .subscribe(subscribe_request("integration", auth).unwrap())
        .await
        .map(tonic::Response::into_inner)
}

/// Runs each statement with the three ids bound as `$1`, `$2` and `$3`.
async fn execute_with_ids(db: &TestDb, statements: &[&str], ids: [uuid::Uuid; 3]) {
    let mut conn = db.pool().get().await.unwrap();
    for sql in statements {
        diesel::sql_query(*sql)
            .bind::<SqlUuid, _>(ids[0])
            .bind::<SqlUuid, _>(ids[1])
            .bind::<SqlUuid, _>(ids[2])
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
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
    execute_with_ids(
        &db,
        &[
            "INSERT INTO accounts (id, email, display_name) VALUES ($1, $1::text || '@example.test', 'P')",
            "INSERT INTO notification_intents (id, kind, idempotency_key, payload, origin_request_id) \
             VALUES ($2, 'lobby.game_started', 'it', '{\"game_id\": \"x\", \"game_name\": \"G\"}', 'req-origin-7')",
            "INSERT INTO notification_routes (id, intent_id, channel, account_id) VALUES ($3, $2, 'push', $1)",
        ],
        [account, intent, route],
    )
    .await;

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
        .wait_for_log(
            Duration::from_secs(3),
            "worker log with the origin request",
            |l| {
                l["message"] == "push route delivered by the worker"
                    && l["origin_request_id"] == "req-origin-7"
            },
        )
        .await;

    // The admin routes are mounted, guarded and documented.
    let resp = backend.get("/api/v1/admin/notifications/routes").await;
    assert_eq!(resp.status(), 401, "admin routes need an admin token");
    let doc: serde_json::Value = backend.get_json("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/user/notifications"].is_object());
    assert!(doc["paths"]["/api/v1/admin/notifications/routes/{id}/retry"].is_object());

    // Shutdown ends the open push stream instead of waiting for the gateway.
    assert!(backend.terminate(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_route_in_a_running_backend_follows_its_mail_to_delivered() {
    let db = TestDb::new();
    let smtp = galaxy_testsmtp::SmtpServer::accepting().unwrap();
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_PUSH_TOKEN", TOKEN)
        .env("BACKEND_SMTP_PORT", smtp.port().to_string())
        .env("BACKEND_MAIL_WORKER_INTERVAL", "100ms")
        .spawn();
    backend.wait_ready(Duration::from_secs(10)).await;

    // An email route handed to its mail, as a submit writes them.
    let (intent, route, mail) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    execute_with_ids(
        &db,
        &[
        "INSERT INTO notification_intents (id, kind, idempotency_key, payload) \
         VALUES ($1, 'runtime.start_config_invalid', 'it-mail', '{}')",
        "INSERT INTO notification_routes (id, intent_id, channel, address) \
         VALUES ($2, $1, 'email', 'ops@example.test')",
        "INSERT INTO mail_deliveries (id, kind, to_address, subject, body_text, notification_route_id) \
         VALUES ($3, 'runtime.start_config_invalid', 'ops@example.test', 's', 'b', $2)",
        "UPDATE notification_routes SET mail_delivery_id = $3 WHERE id = $2",
        ],
        [intent, route, mail],
    )
    .await;
    let mut conn = db.pool().get().await.unwrap();

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct States {
        #[diesel(sql_type = Text)]
        route: String,
        #[diesel(sql_type = Text)]
        mail: String,
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let states = loop {
        let s: States = diesel::sql_query(
            "SELECT r.status AS route, m.status AS mail FROM notification_routes r \
             JOIN mail_deliveries m ON m.id = r.mail_delivery_id WHERE r.id = $1",
        )
        .bind::<SqlUuid, _>(route)
        .get_result(&mut conn)
        .await
        .unwrap();
        if s.mail == "sent" || std::time::Instant::now() > deadline {
            break s;
        }
        // The route never runs ahead of its mail.
        assert_ne!(s.route, "delivered", "{s:?}\n{}", backend.dump());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        states,
        States {
            route: "delivered".into(),
            mail: "sent".into()
        },
        "{}",
        backend.dump()
    );
    assert_eq!(smtp.message_count(), 1);
}
