//! Trace and span ids when no span is exported (`*_OTEL_TRACES_EXPORTER=none`,
//! tests, one-shot commands). Log lines still carry `otel_trace_id` and
//! `otel_span_id` (SYSTEM.md §9) and `traceparent` still travels on queued
//! work and outgoing calls, but nothing builds an OpenTelemetry span per
//! `tracing` span only to drop it: with the bridge in place that was a third
//! of the request path's cost (the auth bench, docs/performance.md).
//!
//! Each new span gets its own span id and its parent's trace id (a root gets
//! a new one); [`crate::set_remote_parent`] replaces a span's trace id with
//! its caller's.

use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A span's place in its trace, kept in the span's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanIds {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub flags: TraceFlags,
}

impl SpanIds {
    /// The W3C `traceparent` naming this span as the parent.
    pub(crate) fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            self.flags.to_u8()
        )
    }
}

/// Gives every span [`SpanIds`]; used instead of the OpenTelemetry bridge
/// when spans go nowhere.
#[derive(Debug, Default)]
pub(crate) struct IdsLayer {
    ids: RandomIdGenerator,
}

impl<S> Layer<S> for IdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<SpanIds>().copied());
        let ids = SpanIds {
            trace_id: parent.map_or_else(|| self.ids.new_trace_id(), |p| p.trace_id),
            span_id: self.ids.new_span_id(),
            flags: parent.map_or(TraceFlags::SAMPLED, |p| p.flags),
        };
        span.extensions_mut().insert(ids);
    }
}

/// Runs `f` on `span`'s ids when an [`IdsLayer`] gave it some; `None` when
/// the span is disabled or the OpenTelemetry bridge runs instead.
pub(crate) fn with_span_ids<R>(
    span: &tracing::Span,
    f: impl FnOnce(&mut SpanIds) -> R,
) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<SpanIds>().map(f)
    })
    .flatten()
}
