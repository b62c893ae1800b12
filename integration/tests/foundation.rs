//! Issue 2 acceptance: probes, schema, configuration errors, problem+json,
//! request ids, concurrent start-up, database outage and shutdown — all
//! against real backend processes and a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_testdb::{PrivateServer, TestDb};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// A database with nothing in it (no schema, no migrations).
async fn empty_database() -> TestDb {
    let db = TestDb::new();
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query("DROP SCHEMA backend CASCADE")
        .execute(&mut conn)
        .await
        .unwrap();
    db
}

/// How many migrations the repository has (one directory each).
fn migration_count() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    i64::try_from(std::fs::read_dir(dir).unwrap().count()).unwrap()
}

async fn applied_migrations(db: &TestDb) -> i64 {
    let mut conn = db.pool().get().await.unwrap();
    let c: Count =
        diesel::sql_query("SELECT count(*) AS n FROM backend.__diesel_schema_migrations")
            .get_result(&mut conn)
            .await
            .unwrap();
    c.n
}

/// `GET path` carrying the client's `X-Request-Id`.
async fn get_with_request_id(backend: &Backend, path: &str, id: &str) -> reqwest::Response {
    let request = backend
        .client
        .get(backend.url(path))
        .header("X-Request-Id", id);
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_database_becomes_ready_and_restart_applies_nothing() {
    let db = empty_database().await;
    let mut backend = BackendBuilder::new(&db.dsn()).spawn();

    // healthz answers as soon as the listener is up, long before 5 s.
    backend
        .eventually(Duration::from_secs(3), "healthz 200", || async {
            backend.status_of("/healthz").await == Some(200)
        })
        .await;
    let took = backend.wait_ready(Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));

    let mut conn = db.pool().get().await.unwrap();
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema='backend' ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables.len(),
        20,
        "the 16 contract tables, admin_login_attempts (docs/decisions.md HARD-5), account_reactions (HARD-15), admin_audit (CONSOLE-4) and diesel's bookkeeping"
    );
    assert!(tables.iter().any(|t| t.name == "admin_audit"));
    assert!(tables.iter().any(|t| t.name == "account_reactions"));
    assert!(tables.iter().any(|t| t.name == "mail_attempts"));
    assert!(tables.iter().any(|t| t.name == "admin_login_attempts"));
    assert_eq!(applied_migrations(&db).await, migration_count());

    assert!(backend.terminate(Duration::from_secs(10)).success());
    let mut again = backend.same_env().spawn();
    again.wait_ready(Duration::from_secs(5)).await;
    assert_eq!(
        applied_migrations(&db).await,
        migration_count(),
        "a restart applies nothing"
    );
    let applied_logs: Vec<_> = again
        .logs()
        .into_iter()
        .filter(|l| l["message"] == "migrations are up to date")
        .collect();
    assert_eq!(applied_logs.len(), 1);
    assert_eq!(applied_logs[0]["applied"], "[]");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_backends_started_together_both_become_ready() {
    let db = empty_database().await;
    let mut a = BackendBuilder::new(&db.dsn()).spawn();
    let mut b = BackendBuilder::new(&db.dsn()).spawn();
    a.wait_ready(Duration::from_secs(10)).await;
    b.wait_ready(Duration::from_secs(10)).await;
    assert_eq!(
        applied_migrations(&db).await,
        migration_count(),
        "the schema was migrated once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_database() {
    // A server of its own: this test stops it.
    let server = PrivateServer::start();
    let dsn = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?search_path=backend",
        server.port()
    );
    let mut backend = BackendBuilder::new(&dsn).spawn();
    backend.wait_ready(Duration::from_secs(10)).await;

    server.stop();
    backend
        .eventually(Duration::from_secs(10), "readyz 503", || async {
            backend.status_of("/readyz").await == Some(503)
        })
        .await;
    let body: serde_json::Value = backend.get_json("/readyz").await;
    assert_eq!(body["ready"], false);
    assert!(
        body["checks"]["postgres"]
            .as_str()
            .unwrap()
            .contains("postgres unreachable")
    );
    assert_eq!(backend.status_of("/healthz").await, Some(200));

    server.start_again();
    backend
        .eventually(Duration::from_secs(15), "readyz 200 again", || async {
            backend.status_of("/readyz").await == Some(200)
        })
        .await;
    assert!(backend.terminate(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_exit_2_naming_the_variable() {
    let base = BackendBuilder::new("postgres://127.0.0.1:1/x?search_path=backend");

    let (status, _, stderr) = base.run(&["check-config"]);
    assert_eq!(status.code(), Some(0), "{stderr}");

    let (status, _, stderr) = BackendBuilder::new("x")
        .without("BACKEND_POSTGRES_DSN")
        .run(&["serve"]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("BACKEND_POSTGRES_DSN"), "{stderr}");

    let (status, _, stderr) = BackendBuilder::new("postgres://127.0.0.1:1/x")
        .env("BACKEND_MAIL_WORKER_INTERVAL", "abc")
        .run(&["check-config"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("BACKEND_MAIL_WORKER_INTERVAL"), "{stderr}");
}

fn assert_problem(
    resp_status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &serde_json::Value,
    code: &str,
) {
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], resp_status);
    assert_eq!(body["code"], code);
    assert!(!body["detail"].as_str().unwrap().is_empty());
    assert_eq!(
        body["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_problems_and_request_ids_round_trip() {
    let db = TestDb::new();
    let mut backend = BackendBuilder::new(&db.dsn()).spawn();
    backend.wait_ready(Duration::from_secs(10)).await;

    let resp = backend.get("/nope").await;
    assert_eq!(resp.status(), 404);
    let headers = resp.headers().clone();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_problem(404, &headers, &body, "not_found");

    let resp = get_with_request_id(&backend, "/nope", "abc-123").await;
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["request_id"], "abc-123");

    // An unsafe id is replaced, not echoed.
    let resp = get_with_request_id(&backend, "/healthz", "<script>").await;
    assert_ne!(resp.headers()["x-request-id"], "<script>");

    // Wrong method on a known route.
    let resp = backend
        .client
        .post(backend.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let headers = resp.headers().clone();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_problem(405, &headers, &body, "method_not_allowed");

    // The OpenAPI document is served.
    let doc: serde_json::Value = backend.get_json("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/readyz"].is_object());

    // One access-log line per request, with route, status and request id.
    backend
        .wait_for_log(Duration::from_secs(2), "access log", |l| {
            l["message"] == "request" && l["request_id"] == "abc-123" && l["status"] == 404
        })
        .await;
    let line = backend
        .logs()
        .into_iter()
        .find(|l| l["message"] == "request" && l["request_id"] == "abc-123")
        .unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "<unmatched>");
    assert!(line["duration_ms"].is_number());
    assert!(line.get("headers").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_zero_within_the_bound() {
    let db = TestDb::new();
    let mut backend: Backend = BackendBuilder::new(&db.dsn()).spawn();
    backend.wait_ready(Duration::from_secs(10)).await;
    let status = backend.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", backend.dump());
    assert!(backend.logs().iter().any(|l| l["message"] == "stopped"));
}

/// `/a/{id}/b` with every path parameter filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        let (_, tail) = after.split_once('}').unwrap_or(("", ""));
        out.push_str("0190d7a5-0000-7000-8000-000000000000");
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// SYSTEM.md §5: on every path the backend serves, an undeclared method is
/// 405 problem+json `method_not_allowed` with `Allow` naming exactly the
/// path's documented methods (never 404).
#[tokio::test(flavor = "multi_thread")]
async fn undeclared_methods_are_405_with_allow_on_every_path() {
    let db = TestDb::new();
    let mut backend = BackendBuilder::new(&db.dsn()).spawn();
    backend.wait_ready(Duration::from_secs(30)).await;
    let doc: serde_json::Value = backend.get_json("/api/v1/openapi.json").await;
    let methods = ["get", "post", "put", "patch", "delete"];
    let mut paths: Vec<(String, Vec<String>)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let declared = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| methods.contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (path.clone(), declared)
        })
        .collect();
    // The document itself is served beside the paths it lists.
    paths.push(("/api/v1/openapi.json".to_owned(), vec!["GET".to_owned()]));
    let mut checked = 0;
    for (path, mut declared) in paths {
        declared.sort();
        for method in methods.map(str::to_uppercase) {
            if declared.contains(&method) {
                continue;
            }
            let resp = backend
                .client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    backend.url(&concrete(&path)),
                )
                .send()
                .await
                .unwrap();
            let what = format!("{method} {path}");
            assert_eq!(resp.status().as_u16(), 405, "{what}");
            assert_eq!(
                resp.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/problem+json"),
                "{what}"
            );
            let mut allow: Vec<String> = resp
                .headers()
                .get("allow")
                .unwrap_or_else(|| panic!("{what}: no Allow"))
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            allow.sort();
            assert_eq!(allow, declared, "{what}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "method_not_allowed", "{what}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} checks");
}
