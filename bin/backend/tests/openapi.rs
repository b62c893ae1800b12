//! Walks the OpenAPI document as `GET /api/v1/openapi.json` serves it: every
//! operation has a real summary, every error response is
//! `application/problem+json`, and no schema is a bare `type: object`
//! outside the allow-list below.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use actix_web::App;
use actix_web::test as web_test;
use serde_json::Value;

/// Where a free-form object is the contract: (schema, property). A schema's
/// property is allowed wherever the schema appears (also inlined, e.g. in
/// `Paged_GameView`). Keep this short; each entry says why.
const FREE_FORM: &[(&str, &str)] = &[
    // Game settings are passed to the engine as they are (SYSTEM.md §6);
    // on the way in they are typed as `SettingsValue` (no NUL, for jsonb).
    ("GameView", "settings"),
    // Notification payloads: their fields depend on the kind (see
    // docs/notifications.md, the catalog).
    ("InboxItem", "payload"),
    ("IntentDetail", "payload"),
    ("IntentView", "payload"),
];

/// Error responses that are not problems: the readiness report is the
/// 503 body of `/readyz` (probes read it, SYSTEM.md §6).
const NOT_PROBLEMS: &[(&str, &str, &str)] = &[("get", "/readyz", "503")];

fn served_document() -> Value {
    actix_web::rt::System::new().block_on(async {
        let app =
            web_test::init_service(App::new().configure(galaxy_backend::openapi::configure)).await;
        let req = web_test::TestRequest::get()
            .uri("/api/v1/openapi.json")
            .to_request();
        let resp = web_test::call_service(&app, req).await;
        assert_eq!(resp.status(), 200);
        serde_json::from_slice(&web_test::read_body(resp).await).expect("the document is JSON")
    })
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

#[test]
fn every_operation_has_a_summary_that_is_not_its_route() {
    let doc = served_document();
    let mut problems = Vec::new();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 40, "the whole API is documented");
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let summary = op["summary"].as_str().unwrap_or("").trim();
            let route = format!("{} {path}", method.to_uppercase());
            let bare = summary.trim_end_matches('.').trim_matches('`');
            let upper = method.to_uppercase();
            if summary.is_empty()
                || bare == path
                || bare.eq_ignore_ascii_case(&route)
                // "`GET /api/…`: …" — the route first, as if it were the summary.
                || summary.starts_with(&format!("`{upper} "))
                || summary.starts_with(&format!("{upper} /"))
            {
                problems.push(format!("{route}: summary {summary:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_error_response_is_problem_json() {
    let doc = served_document();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            for (status, resp) in op["responses"].as_object().expect("responses") {
                if !(status.starts_with('4') || status.starts_with('5'))
                    || NOT_PROBLEMS.contains(&(*method, path.as_str(), status.as_str()))
                {
                    continue;
                }
                let content = &resp["content"];
                if content.get("application/problem+json").is_none()
                    || content.get("application/json").is_some()
                {
                    problems.push(format!(
                        "{} {path} {status}: content types {:?}",
                        method.to_uppercase(),
                        content.as_object().map(|c| c.keys().collect::<Vec<_>>())
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every schema object in the document, with its JSON pointer.
fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            out.push((at.clone(), v));
            for (k, child) in map {
                walk(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `/components/schemas/<S>[/…]/properties/<p>` with (S or Paged_S, p) allowed.
fn allowed(at: &str) -> bool {
    let Some(rest) = at.strip_prefix("/components/schemas/") else {
        return false;
    };
    let top = rest.split('/').next().unwrap_or("");
    let top = top.strip_prefix("Paged_").unwrap_or(top);
    FREE_FORM.iter().any(|(schema, property)| {
        *schema == top && at.ends_with(&format!("/properties/{property}"))
    })
}

fn is_object_type(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "object",
        Value::Array(ts) => ts.iter().any(|t| t == "object"),
        _ => false,
    }
}

#[test]
fn no_schema_is_a_bare_object_outside_the_allow_list() {
    let doc = served_document();
    let mut all = Vec::new();
    walk(&doc, String::new(), &mut all);
    let mut bare = Vec::new();
    for (at, schema) in all {
        if !is_object_type(schema) {
            continue;
        }
        let has_properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        // A map whose values are typed (`additionalProperties: {schema}`) is
        // typed too; `additionalProperties: true` or nothing is not.
        let typed_map = schema
            .get("additionalProperties")
            .is_some_and(Value::is_object);
        if !has_properties && !typed_map && !allowed(&at) {
            bare.push(at);
        }
    }
    assert!(bare.is_empty(), "bare objects:\n{}", bare.join("\n"));
    // The allow-list names properties that exist (it does not rot).
    for (schema, property) in FREE_FORM {
        let at = format!("/components/schemas/{schema}/properties/{property}");
        assert!(
            doc.pointer(&at).is_some(),
            "allow-listed {at} is not in the document"
        );
    }
}

#[test]
fn orders_are_a_tagged_union_of_the_engine_orders_and_the_report_is_typed() {
    let doc = served_document();
    let schemas = &doc["components"]["schemas"];
    let orders = &schemas["SubmitOrders"]["properties"]["orders"];
    assert_eq!(orders["maxItems"], 16, "{orders}");
    let order = &schemas["Order"];
    assert_eq!(order["discriminator"]["propertyName"], "type", "{order}");
    let variants = order["oneOf"].as_array().expect("oneOf");
    assert_eq!(variants.len(), 2);
    let build = &schemas["BuildShips"];
    assert_eq!(build["properties"]["count"]["minimum"], 1, "{build}");
    assert_eq!(
        build["properties"]["type"]["enum"][0], "build_ships",
        "{build}"
    );
    assert_eq!(
        schemas["RaiseIndustry"]["properties"]["type"]["enum"][0],
        "raise_industry"
    );
    let report = &schemas["Report"]["properties"];
    for field in ["turn", "race", "industry", "ships"] {
        assert!(report.get(field).is_some(), "report field {field}");
    }
}
