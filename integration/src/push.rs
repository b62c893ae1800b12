//! A player's push socket through a gateway, as a real WebSocket client.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Gateway;

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Upgrades `/api/v1/push{query}` with `token` as the bearer credential.
pub async fn open(g: &Gateway, token: &str, query: &str) -> Ws {
    let mut req = g
        .ws_url(&format!("/api/v1/push{query}"))
        .into_client_request()
        .expect("a WebSocket request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header value"),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("push upgrade");
    ws
}

/// The next text frame as JSON (pings are skipped); panics after `limit`
/// or when the socket closes.
pub async fn next_frame(ws: &mut Ws, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame within the limit")
            .expect("socket open")
            .expect("a frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// `n` push notifications for `account`, written straight to the tables
/// and left for the backends' workers to push (as after a submit while no
/// gateway listened); their inbox ids in order.
pub async fn push_events(db: &galaxy_testdb::TestDb, account: &str, n: i32) -> Vec<String> {
    use diesel::sql_types::{Integer, Text, Uuid as SqlUuid};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut conn = db.pool().get().await.expect("a connection");
    let rows: Vec<Id> = diesel::sql_query(
        "WITH i AS ( \
           INSERT INTO notification_intents (id, kind, idempotency_key, payload) \
           SELECT gen_random_uuid(), 'lobby.game_started', 'gw-' || gen_random_uuid(), \
                  jsonb_build_object('game_id', gen_random_uuid(), 'game_name', 'G' || g) \
           FROM generate_series(1, $2) g RETURNING id, payload), \
         r AS ( \
           INSERT INTO notification_routes (id, intent_id, channel, account_id, created_at) \
           SELECT gen_random_uuid(), id, 'push', $1, \
                  clock_timestamp() + (row_number() OVER ()) * interval '1 microsecond' \
           FROM i RETURNING id, created_at) \
         SELECT id::text AS id FROM r ORDER BY created_at",
    )
    .bind::<SqlUuid, _>(account.parse::<uuid::Uuid>().expect("an account id"))
    .bind::<Integer, _>(n)
    .load(&mut conn)
    .await
    .expect("insert push events");
    rows.into_iter().map(|r| r.id).collect()
}
