//! The retry worker with short intervals: dead-lettering with no gateway,
//! late subscribers, and routes a crashed submitter never pushed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::time::Duration;

use common::*;
use galaxy_notification::{NO_SUBSCRIBER, NotificationService};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn with_no_subscriber_a_push_route_retries_then_dead_letters() {
    let h = Harness::new(fast_settings(3, None));
    let shutdown = CancellationToken::new();
    let worker = h.service.spawn_worker(shutdown.clone());
    let a = h.account("a").await;
    let s = h.submit(member_joined("k", vec![a])).await;

    let retrying = h
        .wait_push_routes(s.intent_id, Duration::from_secs(5), |r| {
            r.status == "retrying"
        })
        .await;
    assert!(retrying[0].attempts >= 1);
    assert_eq!(retrying[0].last_error.as_deref(), Some(NO_SUBSCRIBER));

    let dead = h
        .wait_push_routes(s.intent_id, Duration::from_secs(5), |r| {
            r.status == "dead_lettered"
        })
        .await;
    assert_eq!(
        dead[0].attempts, 3,
        "dead-lettered after exactly max attempts"
    );
    // It stays dead: later batches leave it alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = h
        .wait_push_routes(s.intent_id, Duration::from_secs(1), |_| true)
        .await;
    assert_eq!(
        (still[0].status.as_str(), still[0].attempts),
        ("dead_lettered", 3)
    );
    shutdown.cancel();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_connects_before_the_maximum_gets_the_event() {
    // Enough attempts that the subscriber surely connects before the last.
    let h = Harness::new(fast_settings(200, None));
    let shutdown = CancellationToken::new();
    let worker = h.service.spawn_worker(shutdown.clone());
    let server = serve_push(h.service.hub().clone()).await;
    let a = h.account("a").await;
    let s = h.submit(member_joined("late", vec![a])).await;
    h.wait_push_routes(s.intent_id, Duration::from_secs(5), |r| {
        r.status == "retrying"
    })
    .await;

    let mut stream = subscribe_with_token(server.addr).await;
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the worker re-pushes to the new subscriber")
        .unwrap()
        .unwrap();
    assert_eq!(ev.event_id, s.intent_id.to_string());
    assert_eq!(ev.account_id, a.to_string());
    let delivered = h
        .wait_push_routes(s.intent_id, Duration::from_secs(5), |r| {
            r.status == "delivered"
        })
        .await;
    assert_eq!(delivered[0].id.to_string(), ev.route_id);
    assert!(delivered[0].attempts >= 2 && delivered[0].attempts < 200);
    shutdown.cancel();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_a_submitter_never_pushed_are_delivered_after_the_lease() {
    // A lease long enough that a loaded machine cannot outlast it between
    // the commit and the first batch below.
    let mut settings = fast_settings(8, None);
    settings.lease = Duration::from_millis(1500);
    let h = Harness::new(settings);
    let mut sub = h.service.hub().subscribe("in-process");
    let a = h.account("a").await;
    // Committed in the caller's transaction, then the caller "crashes":
    // dispatch is never called.
    let mut conn = h.db.pool().get().await.unwrap();
    let service = h.service.clone();
    let pending = diesel_async::AsyncConnection::transaction(&mut *conn, async |c| {
        service.submit_in(c, member_joined("crash", vec![a])).await
    })
    .await
    .unwrap();
    let intent_id = pending.submitted.intent_id;
    drop(pending);

    // Before the lease ends the worker leaves it to the submitter.
    assert_eq!(h.service.run_batch().await.unwrap().processed, 0);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let outcome = h.service.run_batch().await.unwrap();
    assert_eq!(outcome.processed, 1);
    let ev = sub.recv().await.unwrap().unwrap();
    assert_eq!(ev.event_id, intent_id.to_string());
    h.wait_push_routes(intent_id, Duration::from_secs(1), |r| {
        r.status == "delivered" && r.attempts == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_never_claim_the_same_route() {
    let h = Harness::new(fast_settings(8, None));
    let mut sub = h.service.hub().subscribe("in-process");
    let mut recipients = Vec::new();
    for i in 0..30 {
        recipients.push(h.account(&format!("p{i}")).await);
    }
    let mut conn = h.db.pool().get().await.unwrap();
    let service = h.service.clone();
    let pending = diesel_async::AsyncConnection::transaction(&mut *conn, async |c| {
        service
            .submit_in(c, member_joined("many", recipients.clone()))
            .await
    })
    .await
    .unwrap();
    drop(pending);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (x, y) = tokio::join!(h.service.run_batch(), h.service.run_batch());
    assert_eq!(x.unwrap().processed + y.unwrap().processed, 30);
    let mut routes = std::collections::HashSet::new();
    while let Ok(Ok(ev)) = sub.try_recv() {
        assert!(routes.insert(ev.route_id), "a route was pushed twice");
    }
    assert_eq!(routes.len(), 30);
}
