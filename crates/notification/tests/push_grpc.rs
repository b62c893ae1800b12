//! The push service over a real tonic client and server.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn a_subscribed_gateway_receives_member_joined_within_100ms() {
    let h = Harness::new(fast_settings(8, None));
    let (_server, mut stream) = subscribed_gateway(&h).await;
    let (alice, bob) = (h.account("alice").await, h.account("bob").await);
    // Warm the pooled connection's prepared statements, as in a running
    // backend, so the measurement is of the submit path, not of start-up.
    h.submit(member_joined("warm-up", vec![alice])).await;
    stream.message().await.unwrap().unwrap();

    let intent = member_joined("game-1:join:bob", vec![alice, bob]);
    let payload = intent.payload.clone();
    let started = Instant::now();
    let submitted = h.submit(intent).await;
    let first = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("an event arrives")
        .unwrap()
        .unwrap();
    let latency = started.elapsed();
    assert!(
        latency < Duration::from_millis(100),
        "event took {latency:?} from submit to the gateway"
    );
    let second = stream.message().await.unwrap().unwrap();

    let mut recipients = vec![first.account_id.clone(), second.account_id.clone()];
    recipients.sort();
    let mut expected = vec![alice.to_string(), bob.to_string()];
    expected.sort();
    assert_eq!(recipients, expected);
    for ev in [&first, &second] {
        assert_eq!(ev.kind, "lobby.member_joined");
        assert_eq!(ev.event_id, submitted.intent_id.to_string());
        assert!(Uuid::parse_str(&ev.route_id).is_ok());
        assert!(chrono::DateTime::parse_from_rfc3339(&ev.created_at).is_ok());
        let got: serde_json::Value = serde_json::from_str(&ev.payload_json).unwrap();
        assert_eq!(got, payload);
    }
    // Written to a stream → delivered, once.
    let routes = h
        .wait_push_routes(submitted.intent_id, Duration::from_secs(2), |r| {
            r.status == "delivered"
        })
        .await;
    assert_eq!(routes.len(), 2);
    assert!(routes.iter().all(|r| r.attempts == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_missing_token_is_unauthenticated() {
    let h = Harness::new(fast_settings(8, None));
    let server = serve_push(h.service.hub().clone()).await;
    for auth in [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {PUSH_TOKEN}x")),
        Some(format!("Basic {PUSH_TOKEN}")),
        Some(PUSH_TOKEN.to_owned()),
    ] {
        let status = subscribe(server.addr, auth.as_deref())
            .await
            .expect_err("subscribe must be refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{auth:?}");
        assert!(!status.message().contains(PUSH_TOKEN));
    }
    assert_eq!(h.service.hub().subscriber_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_rotation_both_tokens_subscribe_and_nothing_else() {
    let h = Harness::new(fast_settings(8, None));
    let next = "push-token-next-9876543210";
    let server = serve_push_accepting(h.service.hub().clone(), &[PUSH_TOKEN, next]).await;
    let _old = subscribe_with_token(server.addr).await;
    let _new = subscribe(server.addr, Some(&format!("Bearer {next}")))
        .await
        .expect("the next token subscribes");
    wait_subscribers(h.service.hub(), 2).await;
    for auth in [
        format!("Bearer {PUSH_TOKEN},{next}"),
        format!("Bearer {next}x"),
        "Bearer ".to_owned(),
    ] {
        let status = subscribe(server.addr, Some(&auth))
            .await
            .expect_err("only an accepted token subscribes");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{auth:?}");
    }
    assert_eq!(h.service.hub().subscriber_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_subscribed_gateway_receives_every_event() {
    let h = Harness::new(fast_settings(8, None));
    let server = serve_push(h.service.hub().clone()).await;
    let auth = format!("Bearer {PUSH_TOKEN}");
    let mut a = subscribe(server.addr, Some(&auth)).await.unwrap();
    let mut b = subscribe(server.addr, Some(&auth)).await.unwrap();
    wait_subscribers(h.service.hub(), 2).await;
    let carol = h.account("carol").await;
    let submitted = h.submit(member_joined("broadcast", vec![carol])).await;
    for stream in [&mut a, &mut b] {
        let ev = tokio::time::timeout(Duration::from_secs(2), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.event_id, submitted.intent_id.to_string());
        assert_eq!(ev.account_id, carol.to_string());
    }
    // A gateway that hangs up is dropped from the fan-out.
    drop(a);
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.service.hub().subscriber_count() != 0 {
        assert!(
            Instant::now() < deadline,
            "closed streams are never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_open_streams() {
    let h = Harness::new(fast_settings(8, None));
    let (server, mut stream) = subscribed_gateway(&h).await;
    drop(server);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends on shutdown");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}
