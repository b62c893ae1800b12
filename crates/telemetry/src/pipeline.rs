//! Assembles the process telemetry: the JSON log layer, the
//! tracing→OpenTelemetry bridge and the trace/metric exporters chosen by
//! configuration, and hands back a guard that flushes them at shutdown.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::ids::IdsLayer;
use crate::json::JsonLogLayer;
use crate::stdout::{StdoutMetricExporter, StdoutSpanExporter};

/// Where finished spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracesExporter {
    /// OTLP/gRPC to `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` (batched).
    Otlp,
    /// Nowhere. Trace and span ids are still generated so log lines keep
    /// their `otel_trace_id`/`otel_span_id`.
    None,
    /// One JSON line per span on stdout, beside the log lines.
    Stdout,
}

/// Where metrics go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExporter {
    /// OTLP/gRPC push every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
    Otlp,
    /// Nowhere: instruments are no-ops.
    None,
    /// One JSON line per metric on stdout every `OTEL_METRIC_EXPORT_INTERVAL`.
    Stdout,
    /// Pulled: the binary serves [`PrometheusScrape::encode`] on its own
    /// listener at [`TelemetrySettings::prometheus_listen`].
    Prometheus,
}

/// What [`Telemetry::install`] needs: the backend's comes from
/// [`TelemetrySettings::from_env`], the gateway builds its own.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `RUST_LOG`-style filter for log lines and spans.
    pub log_filter: String,
    pub traces: TracesExporter,
    pub metrics: MetricsExporter,
    /// Scrape listener address (used by the binary, only with `Prometheus`).
    pub prometheus_listen: Option<SocketAddr>,
    /// `service.name` of every span and metric.
    pub service_name: String,
}

/// `OTEL_SERVICE_NAME`, or `galaxy-backend`.
pub fn service_name_from_env() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "galaxy-backend".to_owned())
}

impl TelemetrySettings {
    /// Logs only: nothing exported (tests, one-shot commands).
    pub fn logs_only(log_filter: &str) -> Self {
        Self {
            log_filter: log_filter.to_owned(),
            traces: TracesExporter::None,
            metrics: MetricsExporter::None,
            prometheus_listen: None,
            service_name: service_name_from_env(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the {signal} exporter: {reason}")]
    Exporter {
        signal: &'static str,
        reason: String,
    },
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled,
}

impl TelemetryError {
    /// Maps the build error of the `signal` exporter.
    fn exporter<E: std::fmt::Display>(signal: &'static str) -> impl FnOnce(E) -> Self {
        move |e| Self::Exporter {
            signal,
            reason: e.to_string(),
        }
    }
}

/// A meter provider that pushes to `exporter` every export interval.
fn periodic(metrics: MeterProviderBuilder, exporter: impl PushMetricExporter) -> SdkMeterProvider {
    metrics
        .with_reader(PeriodicReader::builder(exporter).build())
        .build()
}

/// Builder: `Telemetry::new(settings).install(std::io::stdout)`.
pub struct Telemetry {
    settings: TelemetrySettings,
}

impl Telemetry {
    pub fn new(settings: TelemetrySettings) -> Self {
        Self { settings }
    }

    /// Builds the exporters and installs the global subscriber, tracer
    /// provider, meter provider and W3C trace-context propagator.
    ///
    /// Must run inside a Tokio runtime when an OTLP exporter is selected:
    /// the gRPC channel's background task is spawned on it (the export
    /// itself runs on the SDK's own batch thread, never on a request task).
    pub fn install<W>(self, writer: W) -> Result<TelemetryGuard, TelemetryError>
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let (tracer_provider, meter_provider, prometheus) = self.providers()?;
        // Spans that go nowhere need ids for the log lines, not the bridge.
        let tracer = (self.settings.traces != TracesExporter::None)
            .then(|| tracer_provider.tracer("galaxy"));
        tracing::subscriber::set_global_default(build_subscriber(
            &self.settings.log_filter,
            writer,
            tracer,
        ))
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
        if let Some(mp) = &meter_provider {
            opentelemetry::global::set_meter_provider(mp.clone());
            crate::metrics::set_enabled();
        }
        Ok(TelemetryGuard {
            tracer_provider: Some(tracer_provider),
            meter_provider,
            prometheus,
        })
    }

    #[allow(clippy::type_complexity)]
    fn providers(
        &self,
    ) -> Result<
        (
            SdkTracerProvider,
            Option<SdkMeterProvider>,
            Option<PrometheusScrape>,
        ),
        TelemetryError,
    > {
        let resource = Resource::builder()
            .with_service_name(self.settings.service_name.clone())
            .build();
        let mut traces = SdkTracerProvider::builder().with_resource(resource.clone());
        traces = match self.settings.traces {
            TracesExporter::None => traces,
            TracesExporter::Stdout => traces.with_batch_exporter(StdoutSpanExporter),
            TracesExporter::Otlp => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .build()
                    .map_err(TelemetryError::exporter("trace"))?;
                // Batch processor: spans queue in memory (bounded; dropped
                // when full) and a dedicated thread exports them, so a slow
                // or absent collector never reaches a request.
                traces.with_batch_exporter(exporter)
            }
        };
        let tracer_provider = traces.build();

        let metrics = SdkMeterProvider::builder().with_resource(resource);
        let (meter_provider, prometheus) = match self.settings.metrics {
            MetricsExporter::None => (None, None),
            MetricsExporter::Stdout => (Some(periodic(metrics, StdoutMetricExporter)), None),
            MetricsExporter::Otlp => {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .build()
                    .map_err(TelemetryError::exporter("metric"))?;
                (Some(periodic(metrics, exporter)), None)
            }
            MetricsExporter::Prometheus => {
                let registry = prometheus::Registry::new();
                let exporter = opentelemetry_prometheus::exporter()
                    .with_registry(registry.clone())
                    .build()
                    .map_err(TelemetryError::exporter("prometheus"))?;
                (
                    Some(metrics.with_reader(exporter).build()),
                    Some(PrometheusScrape { registry }),
                )
            }
        };
        Ok((tracer_provider, meter_provider, prometheus))
    }
}

/// The layered subscriber: filter → span ids → JSON lines. The ids come
/// from the OpenTelemetry bridge when `tracer` exports spans, else from the
/// much cheaper [`IdsLayer`]. Either sits before the JSON layer so a span's
/// ids exist when its first line is written.
pub(crate) fn build_subscriber<W>(
    filter: &str,
    writer: W,
    tracer: Option<Tracer>,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ids = tracer.is_none().then(IdsLayer::default);
    let bridge = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // Keep spans lean: code locations and thread ids add bytes
            // to every span for little diagnostic value here.
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
    });
    Registry::default()
        .with(filter)
        .with(ids)
        .with(bridge)
        .with(JsonLogLayer::new(writer))
}

/// Handle for the Prometheus scrape endpoint (only with `prometheus`).
#[derive(Clone, Debug)]
pub struct PrometheusScrape {
    pub(crate) registry: prometheus::Registry,
}

impl PrometheusScrape {
    /// Content type of [`Self::encode`].
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// The current metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        use prometheus::Encoder as _;
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode the Prometheus exposition");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Keeps the providers alive; [`TelemetryGuard::shutdown`] flushes them.
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    prometheus: Option<PrometheusScrape>,
}

impl TelemetryGuard {
    /// The scrape handle when the metrics exporter is `prometheus`.
    pub fn prometheus(&self) -> Option<PrometheusScrape> {
        self.prometheus.clone()
    }

    /// Flushes pending spans and metrics and stops the exporters, waiting at
    /// most `bound`. Runs on its own thread so an exporter stuck on an
    /// unreachable collector cannot hold the process past the bound; whatever
    /// is not out by then is dropped. Returns whether it finished in time.
    pub fn shutdown(mut self, bound: Duration) -> bool {
        let deadline = std::time::Instant::now() + bound;
        let (done, finished) = mpsc::channel();
        let mut pending = 0;
        // Traces and metrics flush in parallel, each with the whole bound.
        let mut spawn = |job: Box<dyn FnOnce() + Send>| {
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name("telemetry-shutdown".into())
                .spawn(move || {
                    job();
                    let _ = done.send(());
                });
            if spawned.is_ok() {
                pending += 1;
            }
        };
        if let Some(t) = self.tracer_provider.take() {
            spawn(Box::new(move || {
                let _ = t.shutdown_with_timeout(bound);
            }));
        }
        if let Some(m) = self.meter_provider.take() {
            spawn(Box::new(move || {
                let _ = m.shutdown_with_timeout(bound);
            }));
        }
        for _ in 0..pending {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if finished.recv_timeout(left).is_err() {
                return false;
            }
        }
        true
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.tracer_provider.is_some() || self.meter_provider.is_some() {
            let rest = TelemetryGuard {
                tracer_provider: self.tracer_provider.take(),
                meter_provider: self.meter_provider.take(),
                prometheus: None,
            };
            rest.shutdown(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;

    use super::*;

    #[test]
    fn prometheus_scrape_renders_exposition_text() {
        let mut settings = TelemetrySettings::logs_only("info");
        settings.metrics = MetricsExporter::Prometheus;
        settings.service_name = "galaxy-test".into();
        let (_traces, meters, scrape) = Telemetry::new(settings).providers().unwrap();
        let meters = meters.unwrap();
        let counter = meters
            .meter("galaxy")
            .u64_counter("http.server.requests")
            .build();
        counter.add(3, &[opentelemetry::KeyValue::new("http.route", "/healthz")]);
        let text = scrape.unwrap().encode();
        assert!(
            text.contains("# TYPE http_server_requests_total counter"),
            "{text}"
        );
        assert!(text.contains("http_route=\"/healthz\""), "{text}");
        assert!(text.contains("service_name=\"galaxy-test\""), "{text}");
    }

    #[test]
    fn none_builds_no_meter_provider_and_shuts_down_at_once() {
        let (traces, meters, scrape) = Telemetry::new(TelemetrySettings::logs_only("info"))
            .providers()
            .unwrap();
        assert!(meters.is_none() && scrape.is_none());
        let guard = TelemetryGuard {
            tracer_provider: Some(traces),
            meter_provider: None,
            prometheus: None,
        };
        assert!(guard.shutdown(Duration::from_secs(1)));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn shutdown_with_an_unreachable_collector_is_bounded() {
        // A port nothing listens on: bind, note, release.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .build()
            .unwrap();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer("t");
        for _ in 0..100 {
            opentelemetry::trace::Tracer::start(&tracer, "s");
        }
        let guard = TelemetryGuard {
            tracer_provider: Some(provider),
            meter_provider: None,
            prometheus: None,
        };
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(2)))
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
