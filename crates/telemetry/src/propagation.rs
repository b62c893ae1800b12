//! W3C trace-context in and out: link a span to a caller's `traceparent`,
//! capture the current one for work that outlives the request, and open the
//! span of a job that carries its origin.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::ids::with_span_ids;

/// Makes `span` a child of the remote span described by a W3C `traceparent`
/// (and `tracestate`). Call right after creating `span`, before it is
/// entered. A missing or malformed header leaves the span a new root.
pub fn set_remote_parent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    let remote = cx.span().span_context().clone();
    if !remote.is_valid() {
        return;
    }
    let adopted = with_span_ids(span, |ids| {
        ids.trace_id = remote.trace_id();
        ids.flags = remote.trace_flags();
    });
    if adopted.is_none() {
        let _ = span.set_parent(cx);
    }
}

/// The W3C `traceparent` of the current span, to store beside enqueued work
/// or send on an outgoing call. `None` outside any span.
pub fn current_traceparent() -> Option<String> {
    let current = tracing::Span::current();
    if let Some(traceparent) = with_span_ids(&current, |ids| ids.traceparent()) {
        return Some(traceparent);
    }
    let cx = current.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Opens the span for one unit of queued work (a mail delivery, a
/// notification route). `request_id` and `traceparent` are what the
/// enqueuing request stored with the row: log lines inside the span carry
/// that `request_id`, and the span joins the request's trace, so one id
/// finds the HTTP request, the gRPC calls and the work it caused.
pub fn job_span(
    kind: &'static str,
    item_id: &str,
    request_id: Option<&str>,
    traceparent: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "job",
        job = kind,
        job_id = %item_id,
        request_id = tracing::field::Empty,
    );
    if let Some(id) = request_id {
        span.record("request_id", id);
    }
    set_remote_parent(&span, traceparent, None);
    span
}
