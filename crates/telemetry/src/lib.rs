//! Telemetry for every Galaxy process: JSON log lines on stdout carrying the
//! `request_id`, `otel_trace_id` and `otel_span_id` of the scope they are
//! written in; traces and metrics exported per configuration (OTLP, stdout,
//! Prometheus scrape, or none); panics to stderr; and the `email_hash` used
//! wherever a module would otherwise log an address.
//!
//! The binary calls [`Telemetry::install`] once and keeps the returned
//! [`TelemetryGuard`] until shutdown. Modules record metrics through
//! [`record_http_request`], [`record_worker_batch`] and [`register_gauge`].

mod ids;
mod json;
mod metrics;
mod pii;
mod pipeline;
mod propagation;
mod settings;
mod stdout;

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

pub use json::JsonLogLayer;
pub use metrics::{
    GaugeObserver, meter, metrics_enabled, record_http_request, record_worker_batch,
    register_cache_size, register_gauge,
};
pub use pii::email_hash;
pub use pipeline::{
    MetricsExporter, PrometheusScrape, Telemetry, TelemetryError, TelemetryGuard,
    TelemetrySettings, TracesExporter, service_name_from_env,
};
pub use propagation::{current_traceparent, job_span, set_remote_parent};
pub use settings::VARIABLES;

/// Installs the global subscriber with logs only (nothing exported):
/// `RUST_LOG` filter (default `info`) and JSON lines to `writer`. Log lines
/// still carry trace and span ids. Binaries use [`Telemetry::install`].
pub fn init<W>(filter: &str, writer: W) -> Result<TelemetryGuard, TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Telemetry::new(TelemetrySettings::logs_only(filter)).install(writer)
}

/// A logs-only subscriber like `init`'s, for scoped use (`with_default`) in
/// tests. Spans get trace and span ids but go nowhere.
pub fn subscriber<W>(filter: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    pipeline::build_subscriber(filter, writer, None)
}

/// Like [`subscriber`], with the OpenTelemetry bridge in place as when spans
/// are exported (to a local tracer that exports nothing), so tests can show
/// both ways give log lines the same ids.
#[cfg(test)]
pub(crate) fn bridged_subscriber<W>(
    filter: &str,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use opentelemetry::trace::TracerProvider as _;
    let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .build()
        .tracer("galaxy");
    pipeline::build_subscriber(filter, writer, Some(tracer))
}

/// Writes panics (message, location, backtrace) to stderr, then lets the
/// previous hook run. Never writes to stdout, which carries the JSON log.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        let thread = std::thread::current();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "panic in thread {:?}: {info}\n{backtrace}",
            thread.name().unwrap_or("<unnamed>")
        );
        drop(err);
        previous(info);
    }));
}
