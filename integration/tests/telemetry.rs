//! Issue 7 acceptance: trace and metric export (OTLP to a collector running
//! in this test, stdout, Prometheus scrape, none), trace ids on log lines,
//! W3C `traceparent`, and an unreachable collector — all against real
//! backend processes and a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::RunQueryDsl;
use galaxy_integration::{Backend, BackendBuilder, free_port};
use galaxy_testdb::TestDb;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A received span, flattened.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    request_id: Option<String>,
    service_name: Option<String>,
}

/// An OTLP/gRPC collector: records every span and metric name it receives.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
    metrics: Arc<Mutex<Vec<String>>>,
}

fn string_attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(AnyValue::StringValue(s)) => Some(s.clone()),
            _ => None,
        }
    })
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service_name = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"));
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(Received {
                        name: s.name.clone(),
                        kind: s.kind,
                        trace_id: hex::encode(&s.trace_id),
                        span_id: hex::encode(&s.span_id),
                        parent_span_id: hex::encode(&s.parent_span_id),
                        request_id: string_attr(&s.attributes, "request_id"),
                        service_name: service_name.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut names = self.metrics.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                names.extend(sm.metrics.into_iter().map(|m| m.name));
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Collector {
    /// Serves on 127.0.0.1:0 until `stop` is cancelled; returns the address.
    async fn start(&self, stop: CancellationToken) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self.clone()))
            .add_service(MetricsServiceServer::new(self.clone()))
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned());
        tokio::spawn(server);
        addr
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    fn has_metric(&self, name: &str) -> bool {
        self.metrics.lock().unwrap().iter().any(|n| n == name)
    }
}

/// The access-log line ("request") of the request with this id.
fn access_line(backend: &Backend, request_id: &str) -> Option<Value> {
    backend
        .logs()
        .into_iter()
        .find(|l| l["request_id"] == request_id && l["message"] == "request")
}

/// A ready backend whose traces and metrics go to `exporter`.
async fn exporting_backend(db: &TestDb, exporter: &str, metric_interval_ms: u32) -> Backend {
    let mut backend = BackendBuilder::new(&db.dsn())
        .exporting(exporter, metric_interval_ms)
        .spawn();
    backend.wait_ready(Duration::from_secs(10)).await;
    backend
}

/// The access-log line of request `request_id`, once it is written.
async fn logged_access_line(backend: &Backend, request_id: &str) -> Value {
    backend
        .eventually(Duration::from_secs(5), "access log line", || async {
            access_line(backend, request_id).is_some()
        })
        .await;
    access_line(backend, request_id).unwrap()
}

/// `GET /healthz` with request id `request_id` (asserting 200), and its access-log line.
async fn healthz_access_line(backend: &Backend, request_id: &str) -> Value {
    let headers = [("x-request-id", request_id)];
    assert_eq!(get_with(backend, "/healthz", &headers).await, 200);
    logged_access_line(backend, request_id).await
}

async fn get_with(backend: &Backend, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = backend.client.get(backend.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request").status().as_u16()
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_collector_receives_request_spans_with_the_log_trace_id() {
    let db = TestDb::new();
    let collector = Collector::default();
    let stop = CancellationToken::new();
    let addr = collector.start(stop.clone()).await;
    let mut backend = BackendBuilder::new(&db.dsn())
        .exporting("otlp", 300)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_SERVICE_NAME", "galaxy-telemetry-test")
        .spawn();
    backend.wait_ready(Duration::from_secs(10)).await;

    // A fresh request: its span reaches the collector with the trace id its
    // log lines carry.
    let line = healthz_access_line(&backend, "tel-otlp-1").await;
    assert!(is_hex(&line["otel_trace_id"], 32), "{line}");
    assert!(is_hex(&line["otel_span_id"], 16), "{line}");
    let trace_id = line["otel_trace_id"].as_str().unwrap().to_owned();
    let span_id = line["otel_span_id"].as_str().unwrap().to_owned();
    backend
        .eventually(Duration::from_secs(10), "span at the collector", || async {
            collector.spans().iter().any(|s| s.trace_id == trace_id)
        })
        .await;
    let span = collector
        .spans()
        .into_iter()
        .find(|s| s.trace_id == trace_id)
        .unwrap();
    assert_eq!(span.name, "http_request");
    assert_eq!(
        span.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
    );
    assert_eq!(span.span_id, span_id, "the log line names the request span");
    assert_eq!(span.request_id.as_deref(), Some("tel-otlp-1"));
    assert_eq!(span.service_name.as_deref(), Some("galaxy-telemetry-test"));
    assert!(
        span.parent_span_id.is_empty(),
        "no traceparent: a root span"
    );

    // An incoming W3C traceparent: the request span joins that trace as a
    // child of the caller's span.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    assert_eq!(
        get_with(
            &backend,
            "/healthz",
            &[
                ("x-request-id", "tel-otlp-2"),
                ("traceparent", &traceparent)
            ]
        )
        .await,
        200
    );
    backend
        .eventually(
            Duration::from_secs(10),
            "child span at the collector",
            || async { collector.spans().iter().any(|s| s.trace_id == caller_trace) },
        )
        .await;
    let line = access_line(&backend, "tel-otlp-2").unwrap();
    assert_eq!(line["otel_trace_id"], caller_trace);
    let child = collector
        .spans()
        .into_iter()
        .find(|s| s.trace_id == caller_trace)
        .unwrap();
    assert_eq!(child.parent_span_id, caller_span);
    assert_eq!(child.request_id.as_deref(), Some("tel-otlp-2"));

    // A gRPC call: its span carries the caller's request id and trace.
    let grpc_trace = "0af7651916cd43dd8448eb211c80319c";
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", backend.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut req = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    });
    req.metadata_mut()
        .insert("x-request-id", "tel-grpc-1".parse().unwrap());
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{grpc_trace}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    health.check(req).await.expect("gRPC health check");
    backend
        .eventually(
            Duration::from_secs(10),
            "gRPC span at the collector",
            || async { collector.spans().iter().any(|s| s.trace_id == grpc_trace) },
        )
        .await;
    let grpc = collector
        .spans()
        .into_iter()
        .find(|s| s.trace_id == grpc_trace)
        .unwrap();
    assert_eq!(grpc.name, "grpc_request");
    assert_eq!(grpc.request_id.as_deref(), Some("tel-grpc-1"));
    assert_eq!(grpc.parent_span_id, "b7ad6b7169203331");

    // Metrics go the same way.
    backend
        .eventually(
            Duration::from_secs(10),
            "HTTP metrics at the collector",
            || async {
                collector.has_metric("http.server.requests")
                    && collector.has_metric("http.server.request.duration")
            },
        )
        .await;

    assert!(backend.terminate(Duration::from_secs(15)).success());
    stop.cancel();
}

/// Checks the Prometheus text format line by line: comments are HELP/TYPE,
/// samples are `name{labels} value` with a parseable value.
fn assert_valid_exposition(text: &str) {
    assert!(!text.trim().is_empty());
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "bad comment: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value = value.trim();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value in: {line}"
        );
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name in: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrape_listener_serves_http_metrics_off_the_public_port() {
    let db = TestDb::new();
    // One outbox row, so the queue gauge has something to count.
    {
        let mut conn = db.pool().get().await.unwrap();
        diesel::sql_query(
            "INSERT INTO mail_deliveries (id, kind, to_address, subject, body_text, next_attempt_at) \
             VALUES (gen_random_uuid(), 'login_code', 'gauge@example.test', 's', 'b', now() + interval '1 day')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let scrape_addr = format!("127.0.0.1:{}", free_port());
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_OTEL_METRICS_EXPORTER", "prometheus")
        .env("BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR", scrape_addr.clone())
        .spawn();
    backend.wait_ready(Duration::from_secs(10)).await;
    for _ in 0..3 {
        assert_eq!(get_with(&backend, "/healthz", &[]).await, 200);
    }
    assert_eq!(get_with(&backend, "/no/such/route", &[]).await, 404);

    // The public port does not serve /metrics.
    assert_eq!(get_with(&backend, "/metrics", &[]).await, 404);

    let res = backend
        .client
        .get(format!("http://{scrape_addr}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = res.text().await.unwrap();
    assert_valid_exposition(&text);
    assert!(
        text.contains("# TYPE http_server_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE http_server_request_duration_seconds histogram"),
        "{text}"
    );
    let healthz = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_requests_total{")
                && l.contains(r#"http_route="/healthz""#)
                && l.contains(r#"http_response_status_code="200""#)
        })
        .unwrap_or_else(|| panic!("no /healthz series:\n{text}"));
    let count: f64 = healthz.rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!(count >= 3.0, "{healthz}");
    assert!(
        text.contains(r#"http_route="<unmatched>""#),
        "unmatched paths share one series: {text}"
    );
    // Worker batch durations and the queue/container gauges.
    let scrape = || async {
        backend
            .client
            .get(format!("http://{scrape_addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    backend
        .eventually(
            Duration::from_secs(10),
            "worker and queue metrics",
            || async {
                let text = scrape().await;
                text.contains("galaxy_worker_batch_duration_seconds_count{")
                    && text.lines().any(|l| {
                        l.starts_with("galaxy_mail_deliveries{")
                            && l.contains(r#"status="pending""#)
                            && l.ends_with(" 1")
                    })
                    && text.contains("galaxy_notification_routes{")
                    && text.contains("galaxy_runtime_containers{")
                    && text.contains(r#"galaxy_cache_entries{cache="accounts""#)
                    && text.contains(r#"galaxy_cache_entries{cache="games""#)
            },
        )
        .await;
    assert_valid_exposition(&scrape().await);
    // The scrape listener serves nothing but /metrics.
    assert_eq!(
        backend
            .client
            .get(format!("http://{scrape_addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    assert!(backend.terminate(Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_exporters_write_spans_and_metrics_as_json_lines() {
    let db = TestDb::new();
    let mut backend = exporting_backend(&db, "stdout", 300).await;
    let trace_id = healthz_access_line(&backend, "tel-stdout-1").await["otel_trace_id"].clone();
    assert!(is_hex(&trace_id, 32));
    let span_line = |b: &Backend| {
        b.logs().into_iter().find(|l| {
            l["target"] == "otel.span"
                && l["message"] == "http_request"
                && l["otel_trace_id"] == trace_id
        })
    };
    backend
        .eventually(Duration::from_secs(10), "span line on stdout", || async {
            span_line(&backend).is_some()
        })
        .await;
    let span = span_line(&backend).unwrap();
    assert_eq!(span["attributes"]["request_id"], "tel-stdout-1");
    assert_eq!(span["attributes"]["http.route"], "/healthz");
    backend
        .wait_for_log(Duration::from_secs(10), "metric line on stdout", |l| {
            l["target"] == "otel.metric"
                && l["message"] == "http.server.requests"
                && l["points"].as_array().is_some_and(|p| {
                    p.iter()
                        .any(|p| p["attributes"]["http.route"] == "/healthz")
                })
        })
        .await;
    // Every stdout line stays one JSON object (logs, spans and metrics).
    for line in backend.stdout_lines() {
        assert!(
            serde_json::from_str::<Value>(&line).is_ok_and(|v| v.is_object()),
            "not a JSON line: {line}"
        );
    }
    assert!(backend.terminate(Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn none_exports_nothing_but_log_lines_keep_trace_ids() {
    let db = TestDb::new();
    // The harness default is `none` for both; say it explicitly anyway.
    let mut backend = exporting_backend(&db, "none", 100).await;
    for i in 0..5 {
        let id = format!("tel-none-{i}");
        assert_eq!(
            get_with(&backend, "/healthz", &[("x-request-id", &id)]).await,
            200
        );
    }
    let line = logged_access_line(&backend, "tel-none-4").await;
    assert!(is_hex(&line["otel_trace_id"], 32), "{line}");
    // Several export intervals pass; nothing is exported.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(backend.terminate(Duration::from_secs(15)).success());
    let logs = backend.logs();
    assert!(
        !logs
            .iter()
            .any(|l| l["target"] == "otel.span" || l["target"] == "otel.metric"),
        "{}",
        backend.dump()
    );
    assert!(
        !logs.iter().any(|l| l["level"] == "ERROR"
            && l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("opentelemetry"))),
        "{}",
        backend.dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_collector_neither_fails_requests_nor_holds_shutdown() {
    let db = TestDb::new();
    // A port nothing listens on.
    let closed = free_port();
    let mut backend = BackendBuilder::new(&db.dsn())
        .exporting("otlp", 200)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{closed}"),
        )
        .env("BACKEND_SHUTDOWN_TIMEOUT", "3s")
        .spawn();
    backend.wait_ready(Duration::from_secs(10)).await;
    for i in 0..40 {
        let id = format!("tel-down-{i}");
        assert_eq!(
            get_with(&backend, "/healthz", &[("x-request-id", &id)]).await,
            200
        );
        if i % 10 == 0 {
            // Let export attempts (and their failures) happen in between.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    assert_eq!(backend.status_of("/readyz").await, Some(200));
    // Drain bound (3 s) + flush bound (min(3 s, 5 s)) + process start-up slack.
    let status = backend.terminate(Duration::from_secs(8));
    assert!(status.success(), "{status}\n{}", backend.dump());
}
