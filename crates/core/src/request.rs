//! Per-request context: the request id (taken from `X-Request-Id` when sane,
//! generated otherwise), a tracing span carrying it, one JSON access-log line,
//! and the guarantee that every error response is problem+json.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;
use tracing::Instrument;

use crate::problem::{ApiError, PROBLEM_CONTENT_TYPE};
use crate::request_id::{REQUEST_ID_HEADER, request_id_or_new, with_request_id};

/// Observes every request without this crate knowing about exporters: the
/// binary installs one (its telemetry wiring) to link the request span to
/// the caller's W3C trace and to record request metrics.
pub trait RequestObserver: Send + Sync + 'static {
    /// Right after the `http_request` span is created, before it is entered.
    fn started(&self, span: &tracing::Span, headers: &HeaderMap);
    /// After the response is built; `route` is the matched pattern.
    fn finished(&self, method: &str, route: &str, status: u16, elapsed: Duration);
}

static OBSERVER: OnceLock<Box<dyn RequestObserver>> = OnceLock::new();

/// Installs the process-wide observer; returns false if one already is.
pub fn set_request_observer(observer: impl RequestObserver) -> bool {
    OBSERVER.set(Box::new(observer)).is_ok()
}

/// Middleware; wrap the whole app with it (outermost).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext;

impl<S, B> Transform<S, ServiceRequest> for RequestContext
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = RequestContextMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestContextMiddleware {
            service: Rc::new(service),
        }))
    }
}

pub struct RequestContextMiddleware<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for RequestContextMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let request_id = request_id_or_new(
            req.headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        let method = req.method().clone();
        let span = tracing::info_span!(
            "http_request",
            request_id = %request_id,
            http.method = method.as_str(),
            http.route = tracing::field::Empty,
            http.status = tracing::field::Empty,
            otel.kind = "server",
        );
        if let Some(observer) = OBSERVER.get() {
            observer.started(&span, req.headers());
        }
        let service = Rc::clone(&self.service);
        let started = Instant::now();
        let fut = async move {
            let res = service.call(req).await?.map_into_boxed_body();
            let res = ensure_problem_body(res);
            let route = res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "<unmatched>".to_owned());
            let status = res.status().as_u16();
            if let Some(observer) = OBSERVER.get() {
                observer.finished(method.as_str(), &route, status, started.elapsed());
            }
            let span = tracing::Span::current();
            span.record("http.route", route.as_str());
            span.record("http.status", status);
            tracing::info!(
                method = method.as_str(),
                route = route.as_str(),
                status,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request"
            );
            Ok::<_, actix_web::Error>(res)
        }
        .instrument(span);
        // Ids are sane (checked or generated), so the header always builds.
        let echoed = HeaderValue::from_str(&request_id).ok();
        Box::pin(async move {
            let mut res = with_request_id(Some(request_id), fut).await?;
            if let Some(v) = echoed {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
            }
            Ok(res)
        })
    }
}

/// Replaces a non-problem error body (actix's own 404/405/413 …) with a
/// problem+json one. Runs inside the request-id scope.
fn ensure_problem_body(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // A handler that chose a JSON body (problem or, like /readyz, a report)
    // or an HTML page (the operator console's error pages) keeps it; bare
    // framework errors are replaced.
    let is_json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_CONTENT_TYPE.as_bytes())
            || v.starts_with(b"application/json")
            || v.starts_with(b"text/html")
    });
    if is_json {
        return res;
    }
    // Prefer the typed error actix attached (it knows e.g. "JSON overflow").
    let replacement = match res.response().error() {
        Some(err) => crate::http::api_error_from_actix(err, status),
        None => ApiError::for_status(status),
    };
    // actix's resource default answers a wrong method with 405 and `Allow`
    // listing the resource's methods (SYSTEM.md §5); the header survives.
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _old) = res.into_parts();
    let mut new = actix_web::ResponseError::error_response(&replacement);
    if let Some(allow) = allow {
        new.headers_mut().insert(header::ALLOW, allow);
    }
    ServiceResponse::new(req, new)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use actix_web::http::header::HeaderMap;
    use actix_web::test as atest;
    use actix_web::{App, HttpResponse, web};

    use super::{RequestContext, RequestObserver, set_request_observer};
    use crate::request_id::sane_request_id;

    /// (traceparent seen at start, method, route, status) of one request.
    type Seen = (Option<String>, String, String, u16);
    static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

    struct Recorder;

    impl RequestObserver for Recorder {
        fn started(&self, span: &tracing::Span, headers: &HeaderMap) {
            assert!(span.metadata().is_none_or(|m| m.name() == "http_request"));
            let tp = headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            SEEN.lock()
                .unwrap()
                .push((tp, String::new(), String::new(), 0));
        }
        fn finished(&self, method: &str, route: &str, status: u16, _elapsed: Duration) {
            let mut seen = SEEN.lock().unwrap();
            let last = seen.last_mut().unwrap();
            last.1 = method.to_owned();
            last.2 = route.to_owned();
            last.3 = status;
        }
    }

    #[actix_web::test]
    async fn the_observer_sees_headers_route_pattern_and_status() {
        assert!(set_request_observer(Recorder));
        assert!(!set_request_observer(Recorder), "installed once");
        let app =
            atest::init_service(App::new().wrap(RequestContext).service(
                web::resource("/items/{id}").get(|| async { HttpResponse::Ok().finish() }),
            ))
            .await;
        let req = atest::TestRequest::get()
            .uri("/items/42")
            .insert_header((
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ))
            .to_request();
        assert_eq!(atest::call_service(&app, req).await.status(), 200);
        let req = atest::TestRequest::get().uri("/nowhere").to_request();
        assert_eq!(atest::call_service(&app, req).await.status(), 404);
        let seen = SEEN.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                (
                    Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
                    "GET".to_owned(),
                    "/items/{id}".to_owned(),
                    200
                ),
                (None, "GET".to_owned(), "<unmatched>".to_owned(), 404),
            ]
        );
    }

    #[test]
    fn request_id_sanity() {
        assert!(sane_request_id("abc-123"));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id(&"a".repeat(129)));
        assert!(!sane_request_id("<script>"));
    }
}
