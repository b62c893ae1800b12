//! The OpenAPI document served at `GET /api/v1/openapi.json`: the probes and
//! shared schemas here, merged with the document of every module.

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Galaxy backend API", description = "Public, user and admin HTTP API of the Galaxy backend. Every error is application/problem+json (see the Problem schema)."),
    paths(galaxy_core::http::healthz, galaxy_core::http::readyz),
    components(schemas(galaxy_core::Problem, galaxy_core::FieldError, galaxy_core::ReadinessReport)),
    modifiers(&BearerSchemes),
    tags((name = "probes", description = "Liveness and readiness"))
)]
struct BaseDoc;

struct BearerSchemes;

impl utoipa::Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["user_token", "admin_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = BaseDoc::openapi();
    doc.merge(galaxy_auth::openapi());
    doc.merge(galaxy_user::openapi());
    doc.merge(galaxy_admin::openapi());
    doc.merge(galaxy_notification::openapi());
    doc.merge(galaxy_runtime::openapi());
    doc.merge(galaxy_mail::openapi());
    doc.merge(galaxy_lobby::openapi());
    // The audit route only: console pages are not part of the API.
    doc.merge(galaxy_console::openapi());
    problem_json(&mut doc);
    doc
}

/// Every error body is `application/problem+json` (galaxy-core answers so):
/// an error response whose body is the Problem schema is documented with
/// that media type, whichever module declared it.
fn problem_json(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            for (status, response) in &mut op.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let is_problem = response.content.get("application/json").is_some_and(|c| {
                    matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
                });
                if is_problem
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response
                        .content
                        .insert("application/problem+json".to_owned(), content);
                }
            }
        }
    }
}

async fn openapi_json(doc: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.get_ref().clone())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    #[allow(
        clippy::expect_used,
        reason = "a document of derived schemas always serialises; the openapi test serves it"
    )]
    let json = document()
        .to_json()
        .expect("the OpenAPI document serialises");
    // A resource, not `cfg.route(…)`: a route's method guard would move to
    // the resource and other methods would fall through to 404 instead of
    // 405 with `Allow`.
    cfg.app_data(web::Data::new(json))
        .service(web::resource("/api/v1/openapi.json").get(openapi_json));
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_has_probes_and_problem_schema() {
        let doc = super::document();
        assert!(doc.paths.paths.contains_key("/healthz"));
        assert!(doc.paths.paths.contains_key("/readyz"));
        let schemas = &doc.components.as_ref().unwrap().schemas;
        assert!(schemas.contains_key("Problem"));
    }
}
