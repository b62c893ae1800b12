//! The inbox and admin routes through a real actix app on a real database.
//! Session resolution is the auth/admin modules' job: a map of tokens
//! stands in for them here.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, test, web};
use common::*;
use galaxy_core::testing::{ADMIN_TOKEN, TestSessions};
use galaxy_core::{AdminSessionResolver, UserPrincipal, UserSessionResolver};
use serde_json::Value;
use uuid::Uuid;

struct Sessions {
    users: HashMap<String, Uuid>,
}

impl UserSessionResolver for Sessions {
    fn resolve_user(&self, token: &str, _: Option<IpAddr>) -> Option<UserPrincipal> {
        self.users.get(token).map(|id| UserPrincipal {
            account_id: *id,
            session_id: Uuid::nil(),
        })
    }
}

/// The items of a page the API answered.
fn page_items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

/// The status `$app` answers `$req` with.
macro_rules! status {
    ($app:expr, $req:expr) => {
        test::call_service(&$app, $req).await.status()
    };
}

macro_rules! app {
    ($h:expr, $users:expr) => {{
        let sessions = Arc::new(Sessions { users: $users });
        let service = Arc::clone(&$h.service);
        test::init_service(
            App::new()
                .app_data(web::Data::<dyn UserSessionResolver>::from(
                    sessions as Arc<dyn UserSessionResolver>,
                ))
                .app_data(web::Data::<dyn AdminSessionResolver>::from(
                    Arc::new(TestSessions) as Arc<dyn AdminSessionResolver>,
                ))
                .configure(galaxy_core::http::configure_extractors)
                .configure(move |cfg| galaxy_notification::configure(cfg, service)),
        )
        .await
    }};
}

fn get(uri: &str, token: &str) -> actix_http::Request {
    test::TestRequest::get()
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_request()
}

fn post(uri: &str, token: &str) -> actix_http::Request {
    test::TestRequest::post()
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .to_request()
}

#[actix_web::test]
async fn the_inbox_lists_own_notifications_newest_first_and_marks_them_read() {
    let h = Harness::new(fast_settings(8, None));
    let (alice, bob) = (h.account("alice").await, h.account("bob").await);
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = format!("n{i}");
        h.submit(member_joined(&key, vec![alice, bob])).await;
        keys.push(key);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.submit(member_joined("bob-only", vec![bob])).await;
    let users = HashMap::from([("alice".to_owned(), alice), ("bob".to_owned(), bob)]);
    let app = app!(h, users);

    let page: Value =
        test::call_and_read_body_json(&app, get("/api/v1/user/notifications", "alice")).await;
    assert_eq!(page["total"], 3);
    assert_eq!(
        (page["page"].as_u64(), page["page_size"].as_u64()),
        (Some(1), Some(50))
    );
    let items = page_items(&page);
    assert_eq!(items.len(), 3);
    let times: Vec<&str> = items
        .iter()
        .map(|i| i["created_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    for item in items {
        assert_eq!(item["kind"], "lobby.member_joined");
        assert_eq!(item["payload"]["race_name"], "Zorgons");
        assert!(item["read_at"].is_null());
    }

    // Pagination.
    let p2: Value = test::call_and_read_body_json(
        &app,
        get("/api/v1/user/notifications?page=2&page_size=2", "alice"),
    )
    .await;
    assert_eq!(page_items(&p2).len(), 1);
    assert_eq!(p2["items"][0]["id"], items[2]["id"]);

    // Mark the newest read: 204, idempotent, and gone from ?unread=true.
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/v1/user/notifications/{id}/read");
    assert_eq!(status!(app, post(&uri, "alice")), 204);
    assert_eq!(status!(app, post(&uri, "alice")), 204);
    let unread: Value =
        test::call_and_read_body_json(&app, get("/api/v1/user/notifications?unread=true", "alice"))
            .await;
    assert_eq!(unread["total"], 2);
    assert!(page_items(&unread).iter().all(|i| i["id"] != id.as_str()));
    let all: Value =
        test::call_and_read_body_json(&app, get("/api/v1/user/notifications", "alice")).await;
    assert!(all["items"][0]["read_at"].is_string());

    // Another user's notification: 404, and it stays unread for its owner.
    let resp = test::call_service(&app, post(&uri, "bob")).await;
    assert_eq!(resp.status(), 404);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["code"], "not_found");
    let bobs: Value =
        test::call_and_read_body_json(&app, get("/api/v1/user/notifications", "bob")).await;
    assert_eq!(bobs["total"], 4);
    assert!(page_items(&bobs).iter().all(|i| i["read_at"].is_null()));

    // Bad input and missing auth.
    let bad = [
        get("/api/v1/user/notifications?page=0", "alice"),
        get("/api/v1/user/notifications?page_size=500", "alice"),
        get("/api/v1/user/notifications?unread=maybe", "alice"),
        post("/api/v1/user/notifications/not-a-uuid/read", "alice"),
    ];
    for req in bad {
        assert_eq!(status!(app, req), 400);
    }
    let unknown = format!("/api/v1/user/notifications/{}/read", Uuid::now_v7());
    assert_eq!(status!(app, post(&unknown, "alice")), 404);
    let anon = test::TestRequest::get()
        .uri("/api/v1/user/notifications")
        .to_request();
    assert_eq!(status!(app, anon), 401);
    // An admin token is not a user token.
    assert_eq!(
        status!(app, get("/api/v1/user/notifications", ADMIN_TOKEN)),
        401
    );
    let wrong_method = test::TestRequest::delete()
        .uri("/api/v1/user/notifications")
        .insert_header(("Authorization", "Bearer alice"))
        .to_request();
    assert_eq!(status!(app, wrong_method), 405);
}

#[actix_web::test]
async fn admins_list_intents_and_routes_and_retry_dead_letters() {
    let h = Harness::new(fast_settings(1, None));
    let alice = h.account("alice").await;
    let joined = h.submit(member_joined("j", vec![alice])).await;
    let admin_kind = h.submit(start_config_invalid("s")).await;
    let app = app!(h, HashMap::from([("alice".to_owned(), alice)]));

    // Intents, filtered by kind.
    let all: Value = test::call_and_read_body_json(
        &app,
        get("/api/v1/admin/notifications/intents", ADMIN_TOKEN),
    )
    .await;
    assert_eq!(all["total"], 2);
    let by_kind: Value = test::call_and_read_body_json(
        &app,
        get(
            "/api/v1/admin/notifications/intents?kind=runtime.start_config_invalid",
            ADMIN_TOKEN,
        ),
    )
    .await;
    assert_eq!(by_kind["total"], 1);
    assert_eq!(by_kind["items"][0]["id"], admin_kind.intent_id.to_string());
    assert_eq!(by_kind["items"][0]["idempotency_key"], "s");

    // Detail with routes.
    let detail: Value = test::call_and_read_body_json(
        &app,
        get(
            &format!("/api/v1/admin/notifications/intents/{}", joined.intent_id),
            ADMIN_TOKEN,
        ),
    )
    .await;
    let routes = detail["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(detail["payload"]["game_name"], "Andromeda");
    assert!(
        routes
            .iter()
            .any(|r| r["channel"] == "email" && r["mail_delivery_id"].is_string())
    );

    // No gateway, max 1 attempt: the worker dead-letters the push route.
    h.service.run_batch().await.unwrap();
    let push_id = routes.iter().find(|r| r["channel"] == "push").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dead: Value = test::call_and_read_body_json(
        &app,
        get(
            "/api/v1/admin/notifications/routes?status=dead_lettered",
            ADMIN_TOKEN,
        ),
    )
    .await;
    assert_eq!(dead["total"], 1);
    assert_eq!(dead["items"][0]["id"], push_id.as_str());
    let skipped: Value = test::call_and_read_body_json(
        &app,
        get(
            "/api/v1/admin/notifications/routes?status=skipped",
            ADMIN_TOKEN,
        ),
    )
    .await;
    assert_eq!(
        skipped["items"][0]["skip_reason"],
        "admin_email_not_configured"
    );

    // Retry: 202 and pending; again → 409; an unknown id → 404.
    let retry = format!("/api/v1/admin/notifications/routes/{push_id}/retry");
    let resp = test::call_service(&app, post(&retry, ADMIN_TOKEN)).await;
    assert_eq!(resp.status(), 202);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(
        (body["status"].as_str(), body["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    let resp = test::call_service(&app, post(&retry, ADMIN_TOKEN)).await;
    assert_eq!(resp.status(), 409);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["code"], "route_not_dead_lettered");
    let email_id = routes.iter().find(|r| r["channel"] == "email").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = test::call_service(
        &app,
        post(
            &format!("/api/v1/admin/notifications/routes/{email_id}/retry"),
            ADMIN_TOKEN,
        ),
    )
    .await;
    assert_eq!(resp.status(), 409);
    // An email route follows its mail: the mail is what an operator resends.
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["code"], "route_follows_mail");
    let unknown = format!(
        "/api/v1/admin/notifications/routes/{}/retry",
        Uuid::now_v7()
    );
    assert_eq!(status!(app, post(&unknown, ADMIN_TOKEN)), 404);
    let unknown = format!("/api/v1/admin/notifications/intents/{}", Uuid::now_v7());
    assert_eq!(status!(app, get(&unknown, ADMIN_TOKEN)), 404);

    // The re-armed route is delivered once a gateway listens.
    let mut sub = h.service.hub().subscribe("in-process");
    h.service.run_batch().await.unwrap();
    let ev = sub.recv().await.unwrap().unwrap();
    assert_eq!(ev.route_id, push_id);

    // Validation and authorisation.
    for uri in [
        "/api/v1/admin/notifications/intents?kind=nope",
        "/api/v1/admin/notifications/routes?status=lost",
        "/api/v1/admin/notifications/routes?page=0",
        "/api/v1/admin/notifications/intents/xyz",
    ] {
        let resp = test::call_service(&app, get(uri, ADMIN_TOKEN)).await;
        assert_eq!(resp.status(), 400, "{uri}");
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["code"], "validation_failed");
    }
    for uri in [
        "/api/v1/admin/notifications/intents",
        "/api/v1/admin/notifications/routes",
    ] {
        assert_eq!(status!(app, get(uri, "alice")), 401);
    }
    assert_eq!(status!(app, post(&retry, "alice")), 401);
}

#[actix_web::test]
async fn the_openapi_document_covers_every_route() {
    let doc = galaxy_notification::openapi();
    for path in [
        "/api/v1/user/notifications",
        "/api/v1/user/notifications/{id}/read",
        "/api/v1/admin/notifications/intents",
        "/api/v1/admin/notifications/intents/{id}",
        "/api/v1/admin/notifications/routes",
        "/api/v1/admin/notifications/routes/{id}/retry",
    ] {
        assert!(doc.paths.paths.contains_key(path), "{path} missing");
    }
    let schemas = &doc.components.as_ref().unwrap().schemas;
    for s in ["InboxItem", "IntentDetail", "RouteView", "IntentView"] {
        assert!(schemas.contains_key(s), "{s} missing");
    }
}
