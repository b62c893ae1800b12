use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;

use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Span fields kept in the span's extensions for later log lines.
struct SpanFields(Map<String, Value>);

/// Formats each event as one JSON line:
/// `{timestamp, level, target, message, <event fields>, request_id, span, …}`.
/// Fields of enclosing spans (request_id, job ids) are lifted onto the line,
/// the innermost span winning; event fields win over span fields.
///
/// Inside a span, `otel_trace_id` and `otel_span_id` of the innermost span
/// are added when a `tracing_opentelemetry` layer sits *below* this layer in
/// the same subscriber (as [`crate::Telemetry::install`] arranges).
pub struct JsonLogLayer<W> {
    writer: W,
    /// The subscriber this layer is part of, to ask the OpenTelemetry layer
    /// for a span's context (a weak handle: the dispatcher owns us).
    dispatch: OnceLock<WeakDispatch>,
}

impl<W> JsonLogLayer<W> {
    pub fn new(writer: W) -> Self {
        Self {
            writer,
            dispatch: OnceLock::new(),
        }
    }

    /// Trace and span id of `span`'s OpenTelemetry context, as lowercase hex.
    /// The caller must hold no extension guard of that span.
    fn otel_ids(&self, span: &Id) -> Option<(String, String)> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(span, &dispatch)?;
        let otel_span = cx.span();
        let sc = otel_span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }
}

const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "message",
    "span",
    "otel_trace_id",
    "otel_span_id",
];

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = JsonVisitor::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.0));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(map)) = ext.get_mut::<SpanFields>() {
                let mut visitor = JsonVisitor(std::mem::take(map));
                values.record(&mut visitor);
                *map = visitor.0;
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope(event) {
            let mut leaf = None;
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    // `otel.*` fields steer the OpenTelemetry layer (span
                    // kind, name, status); they are not log context.
                    for (k, v) in fields.iter().filter(|(k, _)| !k.starts_with("otel.")) {
                        line.insert(k.clone(), v.clone());
                    }
                }
                leaf = Some((span.name(), span.id()));
            }
            if let Some((name, id)) = leaf {
                line.insert("span".into(), name.into());
                if let Some((trace_id, span_id)) = self.otel_ids(&id) {
                    line.insert("otel_trace_id".into(), trace_id.into());
                    line.insert("otel_span_id".into(), span_id.into());
                }
            }
        }
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let message = fields
            .0
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        line.insert("message".into(), message);
        for (k, v) in fields.0 {
            let key = if RESERVED.contains(&k.as_str()) {
                format!("field.{k}")
            } else {
                k
            };
            line.insert(key, v);
        }
        if let Ok(mut bytes) = serde_json::to_vec(&Value::Object(line)) {
            bytes.push(b'\n');
            let _ = self.writer.make_writer_for(meta).write_all(&bytes);
        }
    }
}

#[derive(Default)]
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn lines_carry_the_request_id_of_their_scope() {
        let buf = Buffer::default();
        let subscriber = crate::subscriber("info", buf.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "http_request",
                request_id = "abc-123",
                status = tracing::field::Empty
            );
            let _g = span.enter();
            span.record("status", 200u16);
            tracing::info!(email_hash = "0011", count = 3, "hello");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["request_id"], "abc-123");
        assert_eq!(line["message"], "hello");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["count"], 3);
        assert_eq!(line["status"], 200);
        assert_eq!(line["span"], "http_request");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    fn lines(buf: &Buffer) -> Vec<Value> {
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn is_hex(v: &Value, len: usize) -> bool {
        v.as_str()
            .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    #[test]
    fn lines_in_a_scope_carry_trace_and_span_ids_of_the_innermost_span() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(crate::subscriber("info", buf.clone()), || {
            let outer =
                tracing::info_span!("http_request", request_id = "r-1", otel.kind = "server");
            let _o = outer.enter();
            tracing::info!("outer");
            let inner = tracing::info_span!("db");
            let _i = inner.enter();
            tracing::info!("inner");
        });
        let l = lines(&buf);
        assert_eq!(l.len(), 2);
        for line in &l {
            assert!(is_hex(&line["otel_trace_id"], 32), "{line}");
            assert!(is_hex(&line["otel_span_id"], 16), "{line}");
            assert_eq!(line["request_id"], "r-1");
            assert!(line.get("otel.kind").is_none(), "{line}");
        }
        assert_eq!(l[0]["otel_trace_id"], l[1]["otel_trace_id"], "one trace");
        assert_ne!(l[0]["otel_span_id"], l[1]["otel_span_id"], "own span ids");
    }

    #[test]
    fn a_remote_traceparent_keeps_its_trace_id() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(crate::subscriber("info", buf.clone()), || {
            let span = tracing::info_span!("http_request");
            crate::set_remote_parent(
                &span,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                None,
            );
            span.in_scope(|| {
                tracing::info!("inside");
                let tp = crate::current_traceparent().unwrap();
                assert!(
                    tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                    "{tp}"
                );
                assert!(
                    !tp.contains("00f067aa0ba902b7"),
                    "own span id, not the parent's"
                );
            });
            // A malformed header leaves a fresh root, not an error.
            let other = tracing::info_span!("http_request");
            crate::set_remote_parent(&other, Some("garbage"), None);
            other.in_scope(|| tracing::info!("fresh"));
        });
        let l = lines(&buf);
        assert_eq!(l[0]["otel_trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(l[0]["otel_span_id"], "00f067aa0ba902b7");
        assert!(is_hex(&l[1]["otel_trace_id"], 32));
        assert_ne!(l[1]["otel_trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_job_span_carries_the_origin_request_id_and_trace() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(crate::subscriber("info", buf.clone()), || {
            let origin = tracing::info_span!("http_request", request_id = "req-9");
            let traceparent = origin.in_scope(crate::current_traceparent).unwrap();
            origin.in_scope(|| tracing::info!("enqueued"));
            let job = crate::job_span("mail", "row-1", Some("req-9"), Some(&traceparent));
            job.in_scope(|| tracing::info!("delivered"));
        });
        let l = lines(&buf);
        assert_eq!(l[1]["request_id"], "req-9");
        assert_eq!(l[1]["job"], "mail");
        assert_eq!(l[1]["job_id"], "row-1");
        assert_eq!(l[0]["otel_trace_id"], l[1]["otel_trace_id"]);
    }

    #[test]
    fn lines_outside_a_scope_have_no_request_id() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(crate::subscriber("info", buf.clone()), || {
            tracing::warn!("plain");
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert!(line.get("request_id").is_none());
        assert!(line.get("otel_trace_id").is_none());
    }
}
