//! Issue 13 acceptance: PostgreSQL stopped and restarted under write load
//! answers only 2xx, 429 and 503, and every accepted request's work is done
//! after recovery.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::RunQueryDsl;
use galaxy_db::{DatabaseUrl, establish};
use galaxy_integration::BackendBuilder;
use galaxy_testdb::PrivateServer;
use serde_json::json;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_under_write_load_answers_no_500_and_loses_nothing() {
    // A server of its own: this test stops it.
    let server = PrivateServer::start();
    let dsn = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?search_path=backend",
        server.port()
    );
    let mut backend = BackendBuilder::new(&dsn)
        .env("BACKEND_AUTH_EMAIL_CODE_LIMIT", "1000000/15m")
        .env("BACKEND_AUTH_IP_CODE_LIMIT", "1000000/15m")
        .env("BACKEND_POSTGRES_MAX_CONNECTIONS", "8")
        .spawn();
    backend.wait_ready(Duration::from_secs(15)).await;
    let url = backend.url("/api/v1/auth/email-code");

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client_no in 0..4 {
        let (url, stop) = (url.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut accepted = Vec::new();
            let mut bodies_500 = Vec::new();
            let mut n = 0u64;
            while !AtomicBool::load(&stop, Ordering::Relaxed) {
                n += 1;
                let email = format!("load-{client_no}-{n}@example.test");
                let r = http
                    .post(&url)
                    .json(&json!({ "email": email }))
                    .send()
                    .await
                    .expect("the backend answers");
                let status = r.status().as_u16();
                *statuses.entry(status).or_default() += 1;
                let body = r.text().await.unwrap_or_default();
                match status {
                    202 => accepted.push(email),
                    429 | 503 => {}
                    _ => bodies_500.push(format!("{status}: {body}")),
                }
            }
            (statuses, accepted, bodies_500)
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.start_again();
    backend
        .eventually(Duration::from_secs(20), "readyz 200 again", || async {
            backend.status_of("/readyz").await == Some(200)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut accepted = Vec::new();
    let mut unexpected = Vec::new();
    for c in clients {
        let (s, a, u) = c.await.unwrap();
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        accepted.extend(a);
        unexpected.extend(u);
    }
    assert!(
        unexpected.is_empty(),
        "only 2xx, 429 and 503 while PostgreSQL restarts; got {statuses:?}: {unexpected:#?}\n{}",
        backend.dump()
    );
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "the outage was seen: {statuses:?}"
    );
    assert!(!accepted.is_empty(), "{statuses:?}");
    let internal: Vec<_> = backend
        .logs()
        .into_iter()
        .filter(|l| l["message"] == "internal error")
        .collect();
    assert!(internal.is_empty(), "no internal errors: {internal:#?}");
    eprintln!("answers while PostgreSQL restarted: {statuses:?}");

    // Every accepted code request has its mail in the outbox.
    let url = DatabaseUrl::parse(&dsn, Duration::from_secs(30)).unwrap();
    let mut conn = establish(&url).await.unwrap();
    let found: Count = diesel::sql_query(
        "SELECT count(DISTINCT to_address) AS n FROM mail_deliveries \
         WHERE kind = 'auth.login_code' AND to_address = ANY($1)",
    )
    .bind::<Array<Text>, _>(&accepted)
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        found.n,
        i64::try_from(accepted.len()).unwrap(),
        "every 202 has its mail ({statuses:?})"
    );
    assert!(backend.terminate(Duration::from_secs(10)).success());
}
