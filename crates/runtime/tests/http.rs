//! Admin routes over the real service (PostgreSQL + Docker).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::sync::Arc;

use actix_web::dev::ServiceResponse;
use actix_web::{App, test, web};
use galaxy_core::{AdminPrincipal, AdminSessionResolver};
use galaxy_runtime::{Actor, ObservedState, PullPolicy, RuntimeService};
use serde_json::{Value, json};
use support::Harness;
use uuid::Uuid;

const TOKEN: &str = "admin-token-for-tests";

struct OneAdmin(Uuid);

impl AdminSessionResolver for OneAdmin {
    fn resolve_admin(&self, token: &str) -> Option<AdminPrincipal> {
        (token == TOKEN).then(|| AdminPrincipal {
            admin_id: self.0,
            session_id: Uuid::nil(),
            username: "root".into(),
        })
    }
}

macro_rules! app {
    ($h:expr, $admin:expr) => {{
        let service: Arc<dyn RuntimeService> = Arc::new($h.runtime.clone());
        let resolver: Arc<dyn AdminSessionResolver> = Arc::new(OneAdmin($admin));
        test::init_service(
            App::new()
                .app_data(web::Data::from(resolver))
                .configure(|cfg| galaxy_runtime::configure(cfg, service))
                .configure(galaxy_core::http::configure_extractors),
        )
        .await
    }};
}

fn auth(req: test::TestRequest) -> test::TestRequest {
    req.insert_header(("Authorization", format!("Bearer {TOKEN}")))
}

/// The status and JSON body (Null when empty) of a response.
async fn parts(resp: ServiceResponse) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = test::read_body(resp).await;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, value)
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_version_routes() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let app = app!(h, Uuid::now_v7());

    let anonymous = test::TestRequest::get()
        .uri("/api/v1/admin/engine-versions")
        .send_request(&app)
        .await;
    assert_eq!(anonymous.status(), 401);

    let list: Value = test::call_and_read_body_json(
        &app,
        auth(test::TestRequest::get().uri("/api/v1/admin/engine-versions")).to_request(),
    )
    .await;
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][0]["version"], "9.9.9");

    let post = |body: &Value| {
        auth(test::TestRequest::post().uri("/api/v1/admin/engine-versions")).set_json(body)
    };
    let created = json!({"version": "3.0.0", "image": "galaxy/game:3.0.0"});
    let (status, body) = parts(post(&created).send_request(&app).await).await;
    assert_eq!(status, 201);
    assert_eq!(body["status"], "active");
    assert_eq!(h.runtime.newest_active_version().unwrap().version, "3.0.0");

    let again = json!({"version": "3.0.0", "image": "galaxy/game:other"});
    let (status, body) = parts(post(&again).send_request(&app).await).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "engine_version_exists");

    for bad in [
        json!({"version": "", "image": "x"}),
        json!({"version": "a b", "image": "x"}),
        json!({"version": "4", "image": "has space"}),
        json!({"version": "4"}),
        json!({"version": "4", "image": "x", "extra": 1}),
    ] {
        let (status, _) = parts(post(&bad).send_request(&app).await).await;
        assert_eq!(status, 400, "{bad}");
    }

    let patch = |version: &str, status: &str| {
        auth(test::TestRequest::patch().uri(&format!("/api/v1/admin/engine-versions/{version}")))
            .set_json(json!({ "status": status }))
    };
    let (status, _) = parts(patch("3.0.0", "disabled").send_request(&app).await).await;
    assert_eq!(status, 200);
    assert_eq!(h.runtime.newest_active_version().unwrap().version, "2.0.0");
    for (version, change, want) in [("nope", "active", 404), ("3.0.0", "gone", 400)] {
        let (status, _) = parts(patch(version, change).send_request(&app).await).await;
        assert_eq!(status, want, "{version} → {change}");
    }
    let wrong_method = auth(test::TestRequest::delete().uri("/api/v1/admin/engine-versions"))
        .send_request(&app)
        .await;
    assert_eq!(wrong_method.status(), 405);

    // A disabled version cannot start a game.
    let game = h.game().await;
    assert!(matches!(
        h.runtime
            .start_game(h.request(game, "3.0.0"), Actor::System)
            .await,
        Err(galaxy_runtime::RuntimeError::VersionDisabled(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_routes() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let admin = Uuid::now_v7();
    let app = app!(h, admin);
    let game = h.game().await;
    let unknown = Uuid::now_v7();

    for uri in [
        format!("/api/v1/admin/runtime/{unknown}"),
        format!("/api/v1/admin/runtime/{unknown}/operations"),
    ] {
        let r = auth(test::TestRequest::get().uri(&uri))
            .send_request(&app)
            .await;
        assert_eq!(r.status(), 404, "{uri}");
    }
    for action in ["start", "stop", "force-next-turn"] {
        let r = auth(
            test::TestRequest::post().uri(&format!("/api/v1/admin/runtime/{unknown}/{action}")),
        )
        .send_request(&app)
        .await;
        assert_eq!(r.status(), 404, "{action}");
    }
    let bad_id = auth(test::TestRequest::get().uri("/api/v1/admin/runtime/not-a-uuid"))
        .send_request(&app)
        .await;
    assert_eq!(bad_id.status(), 400);
    let bad_page = auth(test::TestRequest::get().uri("/api/v1/admin/runtime?page=0"))
        .send_request(&app)
        .await;
    assert_eq!(bad_page.status(), 400);

    // A game started through the service shows up; admin operations answer 202.
    h.start_as_owner(game, "1.0.0", ObservedState::Running)
        .await;
    let list: Value = test::call_and_read_body_json(
        &app,
        auth(test::TestRequest::get().uri("/api/v1/admin/runtime?page=1")).to_request(),
    )
    .await;
    assert_eq!(list["total"], 1);
    let record = &list["items"][0];
    for field in [
        "game_id",
        "desired_state",
        "observed_state",
        "container_id",
        "container_name",
        "engine_version",
        "image",
        "endpoint",
        "current_turn",
        "next_turn_at",
        "skip_next_wait",
        "last_error",
        "last_reconciled_at",
    ] {
        assert!(record.get(field).is_some(), "record lacks {field}");
    }
    assert_eq!(record["observed_state"], "running");

    let again = auth(test::TestRequest::post().uri(&format!("/api/v1/admin/runtime/{game}/start")))
        .send_request(&app)
        .await;
    assert_eq!(again.status(), 409);

    let forced = auth(
        test::TestRequest::post().uri(&format!("/api/v1/admin/runtime/{game}/force-next-turn")),
    )
    .send_request(&app)
    .await;
    assert_eq!(forced.status(), 202);
    let body: Value = test::read_body_json(forced).await;
    let op: Uuid = body["operation_id"].as_str().unwrap().parse().unwrap();

    let patch_unknown =
        auth(test::TestRequest::post().uri(&format!("/api/v1/admin/runtime/{game}/patch")))
            .set_json(json!({"engine_version": "7.7.7"}))
            .send_request(&app)
            .await;
    // Which versions exist is state, not request shape: 409, not 400.
    assert_eq!(patch_unknown.status(), 409);
    let body: Value = test::read_body_json(patch_unknown).await;
    assert_eq!(body["code"], "unknown_engine_version");

    let stop = auth(test::TestRequest::post().uri(&format!("/api/v1/admin/runtime/{game}/stop")))
        .send_request(&app)
        .await;
    assert_eq!(stop.status(), 202);
    h.wait_state(game, ObservedState::Absent).await;

    let ops: Value = test::call_and_read_body_json(
        &app,
        auth(test::TestRequest::get().uri(&format!("/api/v1/admin/runtime/{game}/operations")))
            .to_request(),
    )
    .await;
    assert_eq!(ops["total"], 3);
    // Newest first: stop, force-next-turn (failed: stopped before its
    // tick), start.
    assert_eq!(ops["items"][0]["operation"], "stop");
    assert_eq!(ops["items"][0]["actor"], admin.to_string());
    assert_eq!(ops["items"][0]["outcome"], "succeeded");
    assert_eq!(ops["items"][1]["id"], op.to_string());
    assert_eq!(ops["items"][1]["outcome"], "failed");
    assert!(!h.runtime.record(game).unwrap().skip_next_wait);
    assert_eq!(ops["items"][2]["operation"], "start");
    assert_eq!(ops["items"][2]["actor"], h.owner.to_string());
}
