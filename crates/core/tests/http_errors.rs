//! Every way a request can be malformed ends in problem+json with a stable code.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use actix_web::{App, HttpResponse, test, web};
use galaxy_core::{PageQuery, RequestContext};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Body {
    #[allow(dead_code)]
    name: String,
}

async fn create(_body: web::Json<Body>) -> HttpResponse {
    HttpResponse::Created().finish()
}

async fn by_id(id: web::Path<uuid::Uuid>) -> HttpResponse {
    HttpResponse::Ok().body(id.to_string())
}

async fn list(q: web::Query<PageQuery>) -> Result<HttpResponse, galaxy_core::ApiError> {
    let page = q.into_inner().validate()?;
    Ok(HttpResponse::Ok().json(page.page))
}

macro_rules! app {
    () => {
        test::init_service(
            App::new()
                .wrap(RequestContext)
                .configure(galaxy_core::http::configure_extractors)
                .service(web::resource("/things").post(create).get(list))
                .service(web::resource("/things/{id}").get(by_id)),
        )
        .await
    };
}

/// The status and problem `code` of an error response, after checking it is
/// problem+json carrying its request id.
async fn problem(resp: actix_web::dev::ServiceResponse) -> (u16, String) {
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let rid = resp
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["request_id"], rid.as_str());
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[actix_web::test]
async fn malformed_and_mistyped_json_is_400() {
    let app = app!();
    for payload in [&b"{not json"[..], br#"{"name": 5}"#, br#"[]"#, b""] {
        let req = test::TestRequest::post()
            .uri("/things")
            .insert_header(("content-type", "application/json"))
            .set_payload(payload.to_vec())
            .to_request();
        assert_eq!(
            problem(test::call_service(&app, req).await).await,
            (400, "validation_failed".to_owned()),
            "{payload:?}"
        );
    }
}

#[actix_web::test]
async fn oversized_body_is_413() {
    let app = app!();
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(70 * 1024));
    let req = test::TestRequest::post()
        .uri("/things")
        .insert_header(("content-type", "application/json"))
        .set_payload(big)
        .to_request();
    assert_eq!(
        problem(test::call_service(&app, req).await).await,
        (413, "payload_too_large".to_owned())
    );
}

#[actix_web::test]
async fn bad_uuid_in_path_is_400() {
    let app = app!();
    let req = test::TestRequest::get()
        .uri("/things/not-a-uuid")
        .to_request();
    assert_eq!(
        problem(test::call_service(&app, req).await).await,
        (400, "validation_failed".to_owned())
    );
}

#[actix_web::test]
async fn bad_page_numbers_are_400() {
    let app = app!();
    for uri in [
        "/things?page=0",
        "/things?page=abc",
        "/things?page_size=500",
        "/things?page=-1",
    ] {
        let req = test::TestRequest::get().uri(uri).to_request();
        assert_eq!(
            problem(test::call_service(&app, req).await).await,
            (400, "validation_failed".to_owned()),
            "{uri}"
        );
    }
    let req = test::TestRequest::get().uri("/things?page=2").to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 200);
}

#[actix_web::test]
async fn unknown_route_and_wrong_method() {
    let app = app!();
    let req = test::TestRequest::get().uri("/nope").to_request();
    assert_eq!(
        problem(test::call_service(&app, req).await).await,
        (404, "not_found".to_owned())
    );
    let req = test::TestRequest::delete().uri("/things").to_request();
    assert_eq!(
        problem(test::call_service(&app, req).await).await,
        (405, "method_not_allowed".to_owned())
    );
}

/// SYSTEM.md §5: an undeclared method on a declared path is 405
/// problem+json with `Allow` naming the declared methods — module routes
/// and probes alike.
#[actix_web::test]
async fn wrong_method_is_405_with_allow_everywhere() {
    let app = test::init_service(
        App::new()
            .wrap(RequestContext)
            .configure(galaxy_core::http::configure_extractors)
            .configure(galaxy_core::http::configure_probes)
            .service(web::resource("/things").post(create).get(list))
            .service(web::resource("/things/{id}").get(by_id)),
    )
    .await;
    for (method, uri, allowed) in [
        ("DELETE", "/things", &["GET", "POST"][..]),
        ("PUT", "/things", &["GET", "POST"]),
        (
            "PATCH",
            "/things/0190d7a5-0000-7000-8000-000000000000",
            &["GET"],
        ),
        ("POST", "/healthz", &["GET"]),
        ("DELETE", "/readyz", &["GET"]),
    ] {
        let req = test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(uri)
            .to_request();
        let resp = test::call_service(&app, req).await;
        let allow = resp
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{method} {uri}: no Allow header"))
            .to_str()
            .unwrap()
            .to_owned();
        let mut listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        listed.sort_unstable();
        assert_eq!(listed, allowed, "{method} {uri}");
        assert_eq!(
            problem(resp).await,
            (405, "method_not_allowed".to_owned()),
            "{method} {uri}"
        );
    }
}
