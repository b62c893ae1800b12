//! The JSON log layer: one line per event, written straight into a reused
//! per-thread buffer. Field values are encoded once, when recorded, so a
//! line costs no map, no per-field key allocation and no intermediate
//! `serde_json::Value` (the access line is written on every request).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};

use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::ids::SpanIds;

/// Span fields kept in the span's extensions for later log lines: each
/// value already encoded as JSON, in the order first recorded.
#[derive(Default)]
struct SpanFields(Vec<(&'static str, String)>);

impl SpanFields {
    fn set(&mut self, key: &'static str, json: String) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = json,
            None => self.0.push((key, json)),
        }
    }
}

/// Formats each event as one JSON line:
/// `{timestamp, level, target, message, <event fields>, request_id, span, …}`.
/// Fields of enclosing spans (request_id, job ids) are lifted onto the line,
/// the innermost span winning; event fields win over span fields. A field
/// named like one of the line's own keys is written as `field.<name>`.
///
/// Inside a span, `otel_trace_id` and `otel_span_id` of the innermost span
/// are added when an ids layer or a `tracing_opentelemetry` layer sits
/// *below* this layer in the same subscriber (as [`crate::Telemetry::install`]
/// arranges).
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

    /// Writes `,"otel_trace_id":…,"otel_span_id":…` of `span`'s
    /// OpenTelemetry context, as lowercase hex, when it has a valid one.
    /// The caller must hold no extension guard of that span.
    fn write_otel_ids(&self, span: &Id, line: &mut Vec<u8>) {
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(cx) = tracing_opentelemetry::get_otel_context(span, &dispatch) else {
            return;
        };
        let otel_span = cx.span();
        let sc = otel_span.span_context();
        if sc.is_valid() {
            write_ids(line, sc.trace_id(), sc.span_id());
        }
    }
}

/// `,"otel_trace_id":…,"otel_span_id":…` as lowercase hex.
fn write_ids(line: &mut Vec<u8>, trace_id: TraceId, span_id: SpanId) {
    push_fmt(
        line,
        format_args!(r#","otel_trace_id":"{trace_id}","otel_span_id":"{span_id}""#),
    );
}

/// The line's own keys; a field of that name is written as `field.<name>`.
const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "message",
    "span",
    "otel_trace_id",
    "otel_span_id",
];

/// Per-thread scratch: the line being built and the span keys already on it.
#[derive(Default)]
struct Scratch {
    line: Vec<u8>,
    written: Vec<&'static str>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    /// The whole seconds of the last timestamp written on this thread and
    /// their `YYYY-MM-DDTHH:MM:SS` text.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = SpanFields::default();
        attrs.record(&mut SpanVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut SpanVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                let Scratch { line, written } = &mut *scratch;
                self.write_line(event, &ctx, line, written);
            }
            // An event raised while this thread writes a line (a field's
            // Debug that logs): a fresh buffer, not a panic.
            Err(_) => self.write_line(event, &ctx, &mut Vec::new(), &mut Vec::new()),
        });
    }
}

impl<W> JsonLogLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn write_line<S>(
        &self,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        line: &mut Vec<u8>,
        written: &mut Vec<&'static str>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        line.clear();
        written.clear();
        line.extend_from_slice(br#"{"timestamp":""#);
        write_timestamp(line);
        line.extend_from_slice(br#"","level":""#);
        line.extend_from_slice(meta.level().as_str().as_bytes());
        line.extend_from_slice(br#"","target":"#);
        write_json_str(line, meta.target());
        let mut event_fields = EventVisitor {
            line,
            message: false,
        };
        event.record(&mut event_fields);
        if !event_fields.message {
            line.extend_from_slice(br#","message":"""#);
        }
        if let Some(scope) = ctx.event_scope(event) {
            // Innermost first, so the innermost span's value of a key wins.
            let mut leaf = None;
            for span in scope {
                if leaf.is_none() {
                    let ids = span.extensions().get::<SpanIds>().copied();
                    leaf = Some((span.name(), span.id(), ids));
                }
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (key, json) in fields {
                        // `otel.*` fields steer the OpenTelemetry layer
                        // (span kind, name, status); they are not log context.
                        if key.starts_with("otel.")
                            || written.contains(key)
                            || meta.fields().field(key).is_some()
                        {
                            continue;
                        }
                        written.push(key);
                        write_key(line, key);
                        line.extend_from_slice(json.as_bytes());
                    }
                }
            }
            if let Some((name, id, ids)) = leaf {
                line.extend_from_slice(br#","span":"#);
                write_json_str(line, name);
                match ids {
                    Some(ids) => write_ids(line, ids.trace_id, ids.span_id),
                    None => self.write_otel_ids(&id, line),
                }
            }
        }
        line.extend_from_slice(b"}\n");
        if let Err(error) = self.writer.make_writer_for(meta).write_all(line) {
            line_lost(&error);
        }
    }
}

/// `,"<key>":` (a reserved key as `field.<key>`).
fn write_key(line: &mut Vec<u8>, key: &str) {
    line.extend_from_slice(b",");
    if RESERVED.contains(&key) {
        line.extend_from_slice(br#""field."#);
        escape_into(line, key);
        line.extend_from_slice(br#"":"#);
    } else {
        write_json_str(line, key);
        line.push(b':');
    }
}

/// RFC 3339 in UTC with microseconds and `Z`, the seconds' text cached per
/// thread.
fn write_timestamp(line: &mut Vec<u8>) {
    let now = chrono::Utc::now();
    let secs = now.timestamp();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != secs {
            // A constant, valid pattern: formatting it cannot fail.
            second.1 = now.format("%Y-%m-%dT%H:%M:%S").to_string();
            second.0 = secs;
        }
        line.extend_from_slice(second.1.as_bytes());
    });
    // A leap second shows as 60.999999 rather than an out-of-range fraction.
    let micros = now.timestamp_subsec_micros().min(999_999);
    push_fmt(line, format_args!(".{micros:06}Z"));
}

/// `s` as a JSON string, quotes included.
fn write_json_str(line: &mut Vec<u8>, s: &str) {
    line.push(b'"');
    escape_into(line, s);
    line.push(b'"');
}

/// `s` escaped for the inside of a JSON string.
fn escape_into(line: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => br#"\""#,
            b'\\' => br"\\",
            b'\n' => br"\n",
            b'\r' => br"\r",
            b'\t' => br"\t",
            0..=0x1f => {
                line.extend_from_slice(&bytes[start..i]);
                push_fmt(line, format_args!("\\u{b:04x}"));
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        line.extend_from_slice(&bytes[start..i]);
        line.extend_from_slice(escape);
        start = i + 1;
    }
    line.extend_from_slice(&bytes[start..]);
}

/// Appends formatted text. Appending to a `Vec` cannot fail; an error can
/// only come from a value's own `Display` or `Debug`, and then the line
/// says so instead of ending the value short without a word.
fn push_fmt(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    if out.write_fmt(args).is_err() {
        out.extend_from_slice(UNFORMATTABLE);
    }
}

/// [`push_fmt`], escaped for the inside of a JSON string.
fn push_escaped_fmt(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    if Escaper(out).write_fmt(args).is_err() {
        out.extend_from_slice(UNFORMATTABLE);
    }
}

const UNFORMATTABLE: &[u8] = b"<unformattable>";

/// Whether a lost line was already said on stderr.
static LOSS_REPORTED: AtomicBool = AtomicBool::new(false);

/// Says on stderr, once, that the writer refused a line (stdout closed or
/// full): the log itself is what failed, so stderr is the one place left.
/// Should stderr fail too, there is nowhere further to tell.
fn line_lost(error: &std::io::Error) {
    if !LOSS_REPORTED.swap(true, Ordering::Relaxed) {
        let note = format!(
            "galaxy-telemetry: a log line could not be written ({error}); later losses are not reported\n"
        );
        std::io::stderr().write_all(note.as_bytes()).unwrap_or(());
    }
}

/// Escapes what is formatted into it (a `Debug` or `Display` value).
struct Escaper<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

/// Writes one value as JSON.
enum FieldValue<'a> {
    F64(f64),
    I64(i64),
    U64(u64),
    Bool(bool),
    Str(&'a str),
    Display(&'a dyn fmt::Display),
    Debug(&'a dyn fmt::Debug),
}

impl FieldValue<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match *self {
            // As serde_json: a non-finite number is `null`.
            Self::F64(v) if !v.is_finite() => out.extend_from_slice(b"null"),
            Self::F64(v) => push_fmt(out, format_args!("{v:?}")),
            Self::I64(v) => push_fmt(out, format_args!("{v}")),
            Self::U64(v) => push_fmt(out, format_args!("{v}")),
            Self::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
            Self::Str(v) => write_json_str(out, v),
            Self::Display(v) => {
                out.push(b'"');
                push_escaped_fmt(out, format_args!("{v}"));
                out.push(b'"');
            }
            Self::Debug(v) => {
                out.push(b'"');
                push_escaped_fmt(out, format_args!("{v:?}"));
                out.push(b'"');
            }
        }
    }
}

/// Records a value in each of tracing's shapes through one function.
trait ValueSink {
    fn value(&mut self, field: &Field, value: FieldValue<'_>);
}

/// Every `Visit` method in terms of [`ValueSink::value`].
macro_rules! visit_through_value_sink {
    ($ty:ty) => {
        impl Visit for $ty {
            fn record_f64(&mut self, field: &Field, value: f64) {
                self.value(field, FieldValue::F64(value));
            }
            fn record_i64(&mut self, field: &Field, value: i64) {
                self.value(field, FieldValue::I64(value));
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                self.value(field, FieldValue::U64(value));
            }
            fn record_bool(&mut self, field: &Field, value: bool) {
                self.value(field, FieldValue::Bool(value));
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                self.value(field, FieldValue::Str(value));
            }
            fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
                self.value(field, FieldValue::Display(&value));
            }
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                self.value(field, FieldValue::Debug(value));
            }
        }
    };
}

/// Encodes a span's fields into its [`SpanFields`].
struct SpanVisitor<'a>(&'a mut SpanFields);

impl ValueSink for SpanVisitor<'_> {
    fn value(&mut self, field: &Field, value: FieldValue<'_>) {
        let mut json = Vec::new();
        value.write(&mut json);
        // Only whole JSON values of `str`s and numbers were written.
        self.0
            .set(field.name(), String::from_utf8(json).unwrap_or_default());
    }
}

visit_through_value_sink!(SpanVisitor<'_>);

/// Writes an event's fields onto the line; `message` under its own key.
struct EventVisitor<'a> {
    line: &'a mut Vec<u8>,
    message: bool,
}

impl ValueSink for EventVisitor<'_> {
    fn value(&mut self, field: &Field, value: FieldValue<'_>) {
        if field.name() == "message" {
            self.message = true;
            self.line.extend_from_slice(br#","message":"#);
        } else {
            write_key(self.line, field.name());
        }
        value.write(self.line);
    }
}

visit_through_value_sink!(EventVisitor<'_>);

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use std::io::Write;

    use serde_json::Value;

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

    /// The lines `scenario` writes with spans that go nowhere (the ids
    /// layer) and with the OpenTelemetry bridge: ids must behave the same.
    fn in_both_modes(scenario: impl Fn()) -> [Vec<Value>; 2] {
        let ids = Buffer::default();
        tracing::subscriber::with_default(crate::subscriber("info", ids.clone()), &scenario);
        let bridged = Buffer::default();
        tracing::subscriber::with_default(
            crate::bridged_subscriber("info", bridged.clone()),
            &scenario,
        );
        [lines(&ids), lines(&bridged)]
    }

    #[test]
    fn lines_in_a_scope_carry_trace_and_span_ids_of_the_innermost_span() {
        for l in in_both_modes(|| {
            let outer =
                tracing::info_span!("http_request", request_id = "r-1", otel.kind = "server");
            let _o = outer.enter();
            tracing::info!("outer");
            let inner = tracing::info_span!("db");
            let _i = inner.enter();
            tracing::info!("inner");
        }) {
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
    }

    #[test]
    fn separate_roots_are_separate_traces() {
        for l in in_both_modes(|| {
            tracing::info_span!("a").in_scope(|| tracing::info!("a"));
            tracing::info_span!("b").in_scope(|| tracing::info!("b"));
        }) {
            assert_ne!(l[0]["otel_trace_id"], l[1]["otel_trace_id"]);
        }
    }

    #[test]
    fn a_remote_traceparent_keeps_its_trace_id() {
        for l in in_both_modes(|| {
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
        }) {
            assert_eq!(l[0]["otel_trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(l[0]["otel_span_id"], "00f067aa0ba902b7");
            assert!(is_hex(&l[1]["otel_trace_id"], 32));
            assert_ne!(l[1]["otel_trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        }
    }

    #[test]
    fn a_job_span_carries_the_origin_request_id_and_trace() {
        for l in in_both_modes(|| {
            let origin = tracing::info_span!("http_request", request_id = "req-9");
            let traceparent = origin.in_scope(crate::current_traceparent).unwrap();
            origin.in_scope(|| tracing::info!("enqueued"));
            let job = crate::job_span("mail", "row-1", Some("req-9"), Some(&traceparent));
            job.in_scope(|| {
                tracing::info!("delivered");
                // A child of the job is in the origin's trace too.
                tracing::info_span!("send").in_scope(|| tracing::info!("sent"));
            });
        }) {
            assert_eq!(l[1]["request_id"], "req-9");
            assert_eq!(l[1]["job"], "mail");
            assert_eq!(l[1]["job_id"], "row-1");
            assert_eq!(l[0]["otel_trace_id"], l[1]["otel_trace_id"]);
            assert_eq!(l[0]["otel_trace_id"], l[2]["otel_trace_id"]);
            assert_ne!(l[1]["otel_span_id"], l[2]["otel_span_id"]);
        }
    }

    #[test]
    fn values_are_escaped_and_keys_resolved_as_documented() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(crate::subscriber("info", buf.clone()), || {
            let outer = tracing::info_span!("outer", who = "outer", only_outer = 1u64);
            let _o = outer.enter();
            let inner = tracing::info_span!("inner", who = "inner", shadowed = "span");
            let _i = inner.enter();
            let error = std::io::Error::other("disk \"full\"");
            tracing::info!(
                shadowed = "event",
                level = "mine",
                ratio = f64::NAN,
                half = 0.5,
                negative = -3i64,
                ok = true,
                error = &error as &(dyn std::error::Error + 'static),
                debugged = ?vec!["a\tb"],
                "quote \" backslash \\ newline \n bell \u{7} é"
            );
        });
        let l = lines(&buf);
        let line = &l[0];
        assert_eq!(
            line["message"],
            "quote \" backslash \\ newline \n bell \u{7} é"
        );
        assert_eq!(line["level"], "INFO", "the line's own key is kept");
        assert_eq!(line["field.level"], "mine");
        assert_eq!(line["who"], "inner", "the innermost span wins");
        assert_eq!(line["only_outer"], 1);
        assert_eq!(line["shadowed"], "event", "event fields win over spans");
        assert_eq!(line["span"], "inner");
        assert!(line["ratio"].is_null(), "non-finite numbers are null");
        assert_eq!(line["half"], 0.5);
        assert_eq!(line["negative"], -3);
        assert_eq!(line["ok"], true);
        assert_eq!(line["error"], "disk \"full\"");
        assert_eq!(line["debugged"], "[\"a\\tb\"]");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("\"who\"").count(), 1, "one key once: {text}");
    }

    #[test]
    fn an_event_without_a_message_has_an_empty_one() {
        let buf = Buffer::default();
        tracing::subscriber::with_default(crate::subscriber("info", buf.clone()), || {
            tracing::info!(count = 1);
        });
        assert_eq!(lines(&buf)[0]["message"], "");
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
