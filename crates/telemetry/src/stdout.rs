//! The `stdout` exporters: spans and metrics as JSON lines on stdout, shaped
//! like log lines (`timestamp`, `level`, `target`, `message`) so the same
//! log pipeline can carry them. Targets: `otel.span` and `otel.metric`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{Temporality, exporter::PushMetricExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Map, Value, json};

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn otel_value(v: &OtelValue) -> Value {
    match v {
        OtelValue::Bool(b) => (*b).into(),
        OtelValue::I64(i) => (*i).into(),
        OtelValue::F64(f) => (*f).into(),
        other => other.as_str().into_owned().into(),
    }
}

fn attributes<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> Value {
    Value::Object(
        kvs.map(|kv| (kv.key.as_str().to_owned(), otel_value(&kv.value)))
            .collect::<Map<_, _>>(),
    )
}

/// One line per value so lines never interleave with log lines (stdout's
/// lock is held for the whole line).
fn emit(line: &Value) {
    if let Ok(mut bytes) = serde_json::to_vec(line) {
        bytes.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&bytes);
    }
}

/// Span record as one JSON line.
pub(crate) fn span_line(span: &SpanData) -> Value {
    let ctx = &span.span_context;
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    json!({
        "timestamp": rfc3339(span.end_time),
        "level": "INFO",
        "target": "otel.span",
        "message": span.name,
        "otel_trace_id": ctx.trace_id().to_string(),
        "otel_span_id": ctx.span_id().to_string(),
        "otel_parent_span_id": span.parent_span_id.to_string(),
        "kind": format!("{:?}", span.span_kind),
        "start": rfc3339(span.start_time),
        "duration_ms": duration.as_secs_f64() * 1000.0,
        "status": format!("{:?}", span.status),
        "attributes": attributes(span.attributes.iter()),
    })
}

#[derive(Debug, Default)]
pub(crate) struct StdoutSpanExporter;

impl SpanExporter for StdoutSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &batch {
            emit(&span_line(span));
        }
        Ok(())
    }
}

/// What every histogram point shows: its attributes, count and sum.
fn histogram_point<'a>(
    attrs: impl Iterator<Item = &'a KeyValue>,
    count: impl Into<Value>,
    sum: Value,
) -> Map<String, Value> {
    Map::from_iter([
        ("attributes".to_owned(), attributes(attrs)),
        ("count".to_owned(), count.into()),
        ("sum".to_owned(), sum),
    ])
}

fn points<T: Copy + Into<Value>>(data: &MetricData<T>) -> (&'static str, Vec<Value>) {
    match data {
        MetricData::Gauge(g) => (
            "gauge",
            g.data_points()
                .map(|p| json!({"attributes": attributes(p.attributes()), "value": p.value().into()}))
                .collect(),
        ),
        MetricData::Sum(s) => (
            if s.is_monotonic() { "counter" } else { "sum" },
            s.data_points()
                .map(|p| json!({"attributes": attributes(p.attributes()), "value": p.value().into()}))
                .collect(),
        ),
        MetricData::Histogram(h) => (
            "histogram",
            h.data_points()
                .map(|p| {
                    let mut point = histogram_point(p.attributes(), p.count(), p.sum().into());
                    point.insert("bounds".into(), json!(p.bounds().collect::<Vec<_>>()));
                    let counts = p.bucket_counts().collect::<Vec<_>>();
                    point.insert("bucket_counts".into(), json!(counts));
                    Value::Object(point)
                })
                .collect(),
        ),
        MetricData::ExponentialHistogram(h) => (
            "exponential_histogram",
            h.data_points()
                .map(|p| Value::Object(histogram_point(p.attributes(), p.count(), p.sum().into())))
                .collect(),
        ),
    }
}

pub(crate) fn metric_lines(metrics: &ResourceMetrics) -> Vec<Value> {
    let now = rfc3339(SystemTime::now());
    let mut lines = Vec::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let (kind, points) = match metric.data() {
                AggregatedMetrics::F64(d) => points(d),
                AggregatedMetrics::U64(d) => points(d),
                AggregatedMetrics::I64(d) => points(d),
            };
            lines.push(json!({
                "timestamp": now,
                "level": "INFO",
                "target": "otel.metric",
                "message": metric.name(),
                "metric_kind": kind,
                "unit": metric.unit(),
                "description": metric.description(),
                "points": points,
            }));
        }
    }
    lines
}

#[derive(Debug)]
pub(crate) struct StdoutMetricExporter;

impl PushMetricExporter for StdoutMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        for line in metric_lines(metrics) {
            emit(&line);
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
