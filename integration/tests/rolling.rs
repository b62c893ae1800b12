//! A rolling restart of two backends behind one gateway under a steady
//! player load (SYSTEM.md §12, draining): each backend in turn gets SIGTERM,
//! answers `/readyz` 503 at once while it still serves, drains and exits,
//! and comes back; the gateway moves away in time. No player request gets a
//! 5xx, and the player's push socket stays open and keeps receiving.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use galaxy_integration::api::sign_in;
use galaxy_integration::push::{next_frame, open, push_events};
use galaxy_integration::{Backend, BackendBuilder, Gateway, GatewayBuilder};
use galaxy_testdb::TestDb;

fn backend(db: &TestDb) -> BackendBuilder {
    BackendBuilder::new(&db.dsn())
        .env("BACKEND_NOTIFICATION_WORKER_INTERVAL", "100ms")
        .env("BACKEND_AUTH_IP_CODE_LIMIT", "10000/1m")
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    server_errors: AtomicUsize,
    other: AtomicUsize,
}

/// `GET /api/v1/user/me` through the gateway in a loop until `stop`.
async fn player_load(g: String, token: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    while !stop.load(Ordering::Relaxed) {
        match client
            .get(format!("{g}/api/v1/user/me"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => tally.ok.fetch_add(1, Ordering::Relaxed),
            Ok(r) if r.status().is_server_error() => {
                eprintln!("{} {}", r.status(), r.text().await.unwrap_or_default());
                tally.server_errors.fetch_add(1, Ordering::Relaxed)
            }
            _ => tally.other.fetch_add(1, Ordering::Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGTERM, and while it drains: `/readyz` 503 but requests still served.
async fn restart(b: Backend) -> Backend {
    b.signal("TERM");
    b.eventually(
        Duration::from_secs(2),
        "/readyz 503 while draining",
        || async { b.status_of("/readyz").await == Some(503) },
    )
    .await;
    assert_eq!(b.status_of("/healthz").await, Some(200), "still serving");
    let mut b = b;
    assert!(
        b.wait_exit(Duration::from_secs(15)).success(),
        "{}",
        b.dump()
    );
    let mut back = b.same_env().spawn();
    back.wait_ready(Duration::from_secs(20)).await;
    back
}

async fn gateway_sees_both(g: &Gateway) {
    // Both backends ready again at the gateway (its probe runs every 500 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(g.status_of("/readyz").await, Some(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_answers_no_5xx_and_closes_no_socket() {
    let db = TestDb::new();
    let mut a = backend(&db).spawn();
    a.wait_ready(Duration::from_secs(20)).await;
    // Signed in before the second backend starts, so both have the session
    // from their warm-up: sessions created later reach a peer through the
    // change announcements (issue 15), not what this test measures.
    let (token, account) = sign_in(&a, &db, "steady@example.test").await;
    let mut b = backend(&db).spawn();
    b.wait_ready(Duration::from_secs(20)).await;
    let mut g = GatewayBuilder::new(&[&a, &b]).spawn();
    g.wait_ready(Duration::from_secs(20)).await;
    let mut ws = open(&g, &token, "").await;
    assert_eq!(
        next_frame(&mut ws, Duration::from_secs(5)).await["type"],
        "welcome"
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(player_load(
                g.url(""),
                token.clone(),
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let a = restart(a).await;
    gateway_sees_both(&g).await;
    let b = restart(b).await;
    gateway_sees_both(&g).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }

    let (ok, errors, other) = (
        tally.ok.load(Ordering::Relaxed),
        tally.server_errors.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    eprintln!("rolling restart under load: {ok} ok, {errors} 5xx, {other} other");
    assert!(ok > 200, "the load ran: {ok} answers");
    assert_eq!(errors, 0, "no 5xx\n{}", g.dump());
    assert_eq!(other, 0, "every request answered");

    // The socket never closed: a new event still reaches it.
    let sent = push_events(&db, &account, 1).await;
    let frame = next_frame(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(frame["id"], sent[0].as_str(), "{frame}");
    drop((a, b));
}
