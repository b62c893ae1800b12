//! Submit against a real PostgreSQL: idempotency (also under concurrency),
//! channels per audience, mail rows in the same transaction, caller
//! transactions, validation and user deletion.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::sync::Arc;

use common::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use galaxy_notification::{NotificationError, NotificationService};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn the_same_intent_twice_creates_one_intent_and_one_set_of_routes() {
    let h = Harness::new(fast_settings(8, None));
    let (a, b, c) = (
        h.account("a").await,
        h.account("b").await,
        h.account("c").await,
    );
    let intent = member_joined("game-7:join:c", vec![a, b, c]);
    let first = h.submit(intent.clone()).await;
    assert!(first.created);
    // Same key, even with another payload: the first intent wins.
    let mut again = intent.clone();
    again.payload["race_name"] = serde_json::json!("Other");
    let second = h.submit(again).await;
    assert_eq!(second.intent_id, first.intent_id);
    assert!(!second.created);
    assert_eq!(h.totals().await, (1, 6, 3), "intents, routes, mails");
    // The same key under another kind is another intent.
    let mut other_kind = intent;
    other_kind.kind = "lobby.game_started".to_owned();
    assert!(h.submit(other_kind).await.created);
    assert_eq!(h.rows("notification_intents").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_submits_of_one_intent_create_it_once() {
    let h = Harness::new(fast_settings(8, None));
    let (a, b) = (h.account("a").await, h.account("b").await);
    let intent = member_joined("race", vec![a, b]);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let service = Arc::clone(&h.service);
            let intent = intent.clone();
            tokio::spawn(async move { service.submit(intent).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().expect("every racing submit succeeds"));
    }
    let id = results[0].intent_id;
    assert!(results.iter().all(|r| r.intent_id == id));
    assert_eq!(results.iter().filter(|r| r.created).count(), 1);
    assert_eq!(h.totals().await, (1, 4, 2), "intents, routes, mails");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_submits_each_return_with_their_push_outcome_written() {
    let h = Harness::new(fast_settings(8, None));
    let (a, b) = (h.account("a").await, h.account("b").await);
    let mut gateway = h.service.hub().subscribe("gw");
    // 24 distinct intents at once: their outcomes are written together by
    // the recorder, yet each submit returns only after its own is written.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let service = Arc::clone(&h.service);
            let intent = member_joined(&format!("burst-{i}"), vec![a, b]);
            tokio::spawn(async move {
                let s = service.submit(intent).await.unwrap();
                assert!(s.created);
                s.intent_id
            })
        })
        .collect();
    let mut intent_ids = Vec::new();
    for t in tasks {
        let intent_id = t.await.unwrap();
        let routes = h.routes(intent_id).await;
        assert_eq!(routes.len(), 4, "{routes:?}");
        for r in &routes {
            // Push routes reached the gateway; email routes wait for their mail.
            let want = if r.channel == "push" {
                ("delivered", 1)
            } else {
                ("pending", 0)
            };
            assert_eq!((r.status.as_str(), r.attempts), want, "{r:?}");
        }
        intent_ids.push(intent_id);
    }
    // Each mail points at its route and each email route at its mail.
    assert_eq!(
        h.count(
            "SELECT count(*) AS n FROM notification_routes r \
             JOIN mail_deliveries m ON m.id = r.mail_delivery_id AND m.notification_route_id = r.id"
        )
        .await,
        48
    );
    // The gateway got every push event exactly once.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..48 {
        let ev = gateway.recv().await.unwrap().unwrap();
        assert!(seen.insert(ev.route_id));
    }
    assert!(gateway.try_recv().is_err());
    intent_ids.sort();
    intent_ids.dedup();
    assert_eq!(intent_ids.len(), 24);
}

#[tokio::test(flavor = "multi_thread")]
async fn player_kinds_get_a_push_and_an_email_route_per_recipient() {
    let h = Harness::new(fast_settings(8, None));
    let (a, b) = (h.account("a").await, h.account("b").await);
    // b has no address in the directory: the email route is skipped, not lost.
    h.directory.0.write().unwrap().remove(&b);
    let s = h.submit(member_joined("k", vec![a, b])).await;
    let routes = h.routes(s.intent_id).await;
    let push: Vec<_> = routes.iter().filter(|r| r.channel == "push").collect();
    let email: Vec<_> = routes.iter().filter(|r| r.channel == "email").collect();
    assert_eq!((push.len(), email.len()), (2, 2));
    // No gateway subscribed: push routes wait for the worker, unattempted.
    assert!(
        push.iter()
            .all(|r| r.status == "pending" && r.attempts == 0)
    );
    let to_a = email.iter().find(|r| r.account_id == Some(a)).unwrap();
    assert_eq!(to_a.status, "pending", "follows its mail, not yet sent");
    let mail = to_a.mail_delivery_id.expect("linked to its mail");
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) AS n FROM mail_deliveries WHERE id = '{mail}' \
             AND notification_route_id = '{}' AND status = 'pending' \
             AND kind = 'lobby.member_joined' AND subject LIKE '%Zorgons joined Andromeda%' \
             AND to_address = '{}'",
            to_a.id,
            to_a.address.as_deref().unwrap()
        ))
        .await,
        1
    );
    let to_b = email.iter().find(|r| r.account_id == Some(b)).unwrap();
    assert_eq!(to_b.status, "skipped");
    assert_eq!(to_b.skip_reason.as_deref(), Some("no_email_address"));
    assert_eq!(h.rows("mail_deliveries").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_kind_without_admin_email_lands_skipped() {
    let h = Harness::new(fast_settings(8, None));
    let s = h.submit(start_config_invalid("g-1:start")).await;
    let routes = h.routes(s.intent_id).await;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].channel, "email");
    assert_eq!(routes[0].status, "skipped");
    assert_eq!(
        routes[0].skip_reason.as_deref(),
        Some("admin_email_not_configured")
    );
    assert_eq!(h.rows("mail_deliveries").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_kind_with_admin_email_enqueues_a_mail_to_it() {
    let h = Harness::new(fast_settings(8, Some("ops@example.test")));
    let s = h.submit(start_config_invalid("g-2:start")).await;
    let routes = h.routes(s.intent_id).await;
    assert_eq!(routes.len(), 1);
    let r = &routes[0];
    assert_eq!(
        (r.channel.as_str(), r.status.as_str()),
        ("email", "pending")
    );
    assert_eq!(r.address.as_deref(), Some("ops@example.test"));
    assert_eq!(r.account_id, None);
    let mail = r.mail_delivery_id.unwrap();
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) AS n FROM mail_deliveries WHERE id = '{mail}' \
             AND to_address = 'ops@example.test' AND notification_route_id = '{}' \
             AND status = 'pending' AND body_text LIKE '%code 78%'",
            r.id
        ))
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_in_commits_and_rolls_back_with_the_callers_transaction() {
    let h = Harness::new(fast_settings(8, None));
    let a = h.account("a").await;
    let mut conn = h.db.pool().get().await.unwrap();

    // Rolled back: nothing of the intent survives.
    let service = Arc::clone(&h.service);
    let rolled: Result<(), NotificationError> = conn
        .transaction(async |c| {
            let _pending = service.submit_in(c, member_joined("tx", vec![a])).await?;
            Err(NotificationError::NotFound)
        })
        .await;
    assert!(rolled.is_err());
    assert_eq!(h.rows("notification_intents").await, 0);
    assert_eq!(h.rows("mail_deliveries").await, 0);

    // Committed, then dispatched to a subscriber.
    let mut sub = h.service.hub().subscribe("in-process");
    let pending = conn
        .transaction(async |c| service.submit_in(c, member_joined("tx", vec![a])).await)
        .await
        .unwrap();
    assert_eq!(pending.events().len(), 1);
    let intent_id = pending.submitted.intent_id;
    h.service.dispatch(pending).await;
    let ev = sub.recv().await.unwrap().unwrap();
    assert_eq!(ev.event_id, intent_id.to_string());
    let routes = h.routes(intent_id).await;
    assert!(
        routes.iter().all(|r| r.status
            == if r.channel == "push" {
                "delivered"
            } else {
                "pending"
            }),
        "{routes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_intents_are_typed_errors_and_write_nothing() {
    let h = Harness::new(fast_settings(8, None));
    let a = h.account("a").await;
    let mut unknown = member_joined("k", vec![a]);
    unknown.kind = "lobby.exploded".to_owned();
    assert!(matches!(
        h.service.submit(unknown).await,
        Err(NotificationError::UnknownKind { .. })
    ));
    let mut bad = member_joined("k", vec![a]);
    bad.payload["game_id"] = serde_json::json!(42);
    assert!(matches!(
        h.service.submit(bad).await,
        Err(NotificationError::InvalidPayload { .. })
    ));
    assert!(matches!(
        h.service.submit(member_joined("k", vec![])).await,
        Err(NotificationError::NoRecipients { .. })
    ));
    assert!(matches!(
        h.service
            .submit(member_joined(&"k".repeat(201), vec![a]))
            .await,
        Err(NotificationError::InvalidIdempotencyKey { .. })
    ));
    assert!(matches!(
        h.service
            .submit(member_joined("k", vec![Uuid::now_v7()]))
            .await,
        Err(NotificationError::UnknownRecipient)
    ));
    assert_eq!(h.rows("notification_intents").await, 0);
    assert_eq!(h.rows("notification_routes").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_users_pending_routes_are_skipped_and_kept() {
    let h = Harness::new(fast_settings(8, None));
    let (gone, stays) = (h.account("gone").await, h.account("stays").await);
    let s = h.submit(member_joined("k", vec![gone, stays])).await;
    // One of gone's push routes fails over to retrying first.
    let mut conn = h.db.pool().get().await.unwrap();
    diesel::sql_query(format!(
        "UPDATE notification_routes SET status = 'retrying', attempts = 1 \
         WHERE account_id = '{gone}' AND channel = 'push'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let s2 = h.submit(member_joined("k2", vec![gone])).await;

    assert_eq!(h.service.on_user_deleted(gone).await.unwrap(), 2);
    // A retried reaction (decision HARD-15) changes nothing more.
    assert_eq!(h.service.on_user_deleted(gone).await.unwrap(), 0);

    for intent in [s.intent_id, s2.intent_id] {
        for r in h.routes(intent).await {
            match (r.account_id == Some(gone), r.channel.as_str()) {
                (true, "push") => {
                    assert_eq!(r.status, "skipped");
                    assert_eq!(r.skip_reason.as_deref(), Some("user_deleted"));
                }
                // Email routes were handed to the outbox already and
                // follow their mail (still pending here).
                (_, "email") => assert_eq!(r.status, "pending"),
                _ => assert_eq!(r.status, "pending"),
            }
        }
    }
    assert_eq!(h.rows("notification_routes").await, 6);
}
