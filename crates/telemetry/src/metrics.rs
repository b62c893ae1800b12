//! The instruments every module shares, and a small registration API for
//! gauges the modules own (queue depths, container states, cache sizes).
//!
//! Instruments come from the global meter provider, so they must be created
//! after [`crate::Telemetry::install`]; they are created lazily on first use.
//! With the metrics exporter `none` the global provider is a no-op and
//! recording costs next to nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Counter, Histogram, Meter, ObservableGauge};

const METER: &str = "galaxy";

/// Seconds; finer at the low end where API requests live.
const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static ENABLED: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_enabled() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether a metrics exporter is installed; collectors that cost a query
/// (see `register_gauge`) skip their work when it is not.
pub fn metrics_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The meter every Galaxy instrument hangs off.
pub fn meter() -> Meter {
    opentelemetry::global::meter(METER)
}

struct HttpInstruments {
    requests: Counter<u64>,
    duration: Histogram<f64>,
}

fn http() -> &'static HttpInstruments {
    static HTTP: OnceLock<HttpInstruments> = OnceLock::new();
    HTTP.get_or_init(|| {
        let m = meter();
        HttpInstruments {
            requests: m
                .u64_counter("http.server.requests")
                .with_description("HTTP requests served, by route pattern and status")
                .build(),
            duration: m
                .f64_histogram("http.server.request.duration")
                .with_description("HTTP request latency, by route pattern and status")
                .with_unit("s")
                .with_boundaries(LATENCY_BOUNDS.to_vec())
                .build(),
        }
    })
}

/// Records one served HTTP request. `route` is the route *pattern*
/// (`/api/v1/games/{id}`), never the raw path, to bound cardinality.
pub fn record_http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let attrs = [
        KeyValue::new("http.request.method", method.to_owned()),
        KeyValue::new("http.route", route.to_owned()),
        KeyValue::new("http.response.status_code", i64::from(status)),
    ];
    let h = http();
    h.requests.add(1, &attrs);
    h.duration.record(elapsed.as_secs_f64(), &attrs);
}

/// Records one worker batch: `outcome` is `processed`, `idle` or `failed`.
pub fn record_worker_batch(worker: &'static str, outcome: &'static str, elapsed: Duration) {
    static BATCH: OnceLock<Histogram<f64>> = OnceLock::new();
    BATCH
        .get_or_init(|| {
            meter()
                .f64_histogram("galaxy.worker.batch.duration")
                .with_description("Duration of one worker batch, by worker and outcome")
                .with_unit("s")
                .with_boundaries(LATENCY_BOUNDS.to_vec())
                .build()
        })
        .record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("worker", worker),
                KeyValue::new("outcome", outcome),
            ],
        );
}

/// Passed to a gauge callback: report one value per label set.
pub struct GaugeObserver<'a> {
    inner: &'a dyn AsyncInstrument<i64>,
}

impl GaugeObserver<'_> {
    /// Reports `value` for the label set `labels` (e.g. `[("status", "sent")]`).
    pub fn observe(&self, value: i64, labels: &[(&'static str, &str)]) {
        let attrs: Vec<KeyValue> = labels
            .iter()
            .map(|(k, v)| KeyValue::new(*k, (*v).to_owned()))
            .collect();
        self.inner.observe(value, &attrs);
    }
}

/// Registered gauges live for the whole process.
fn registered() -> &'static Mutex<Vec<ObservableGauge<i64>>> {
    static GAUGES: OnceLock<Mutex<Vec<ObservableGauge<i64>>>> = OnceLock::new();
    GAUGES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Registers a gauge whose values are read by `callback` at each export or
/// scrape. The callback runs on the exporter's thread (or the scrape
/// handler): it must be quick and must not block on I/O — read an in-memory
/// value (a cache's `len()`, an `AtomicI64` a worker updates), never the
/// database. Call after [`crate::Telemetry::install`].
///
/// ```text
/// galaxy_telemetry::register_gauge("galaxy.cache.entries", "Entries per cache", move |o| {
///     o.observe(cache.len() as i64, &[("cache", "accounts")]);
/// });
/// ```
pub fn register_gauge<F>(name: &'static str, description: &'static str, callback: F)
where
    F: Fn(&GaugeObserver<'_>) + Send + Sync + 'static,
{
    register_gauge_on(&meter(), name, description, callback);
}

/// `galaxy.cache.entries{cache=<cache>}`: the size of one in-memory cache.
/// Each module registers its own caches (one call per cache, same metric).
///
/// ```text
/// let users = user_cache.clone();
/// galaxy_telemetry::register_cache_size("users", move || users.len());
/// ```
pub fn register_cache_size<F>(cache: &'static str, len: F)
where
    F: Fn() -> usize + Send + Sync + 'static,
{
    register_cache_size_on(&meter(), cache, len);
}

fn register_cache_size_on<F>(meter: &Meter, cache: &'static str, len: F)
where
    F: Fn() -> usize + Send + Sync + 'static,
{
    register_gauge_on(
        meter,
        "galaxy.cache.entries",
        "Entries held by each in-memory cache",
        move |o| {
            o.observe(
                i64::try_from(len()).unwrap_or(i64::MAX),
                &[("cache", cache)],
            );
        },
    );
}

fn register_gauge_on<F>(meter: &Meter, name: &'static str, description: &'static str, callback: F)
where
    F: Fn(&GaugeObserver<'_>) + Send + Sync + 'static,
{
    let gauge = meter
        .i64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |inner| callback(&GaugeObserver { inner }))
        .build();
    if let Ok(mut all) = registered().lock() {
        all.push(gauge);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;

    use super::*;

    #[test]
    fn each_registered_cache_is_its_own_series_of_one_gauge() {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .unwrap();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .build();
        let m = provider.meter("galaxy");
        let size = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(3));
        let s = size.clone();
        register_cache_size_on(&m, "users", move || s.load(Ordering::Relaxed));
        register_cache_size_on(&m, "games", || 7);
        register_gauge_on(&m, "galaxy.mail.deliveries", "by status", |o| {
            o.observe(2, &[("status", "pending")]);
            o.observe(0, &[("status", "sent")]);
        });
        let scrape = crate::PrometheusScrape { registry };
        let text = scrape.encode();
        assert!(
            text.contains(r#"galaxy_cache_entries{cache="users",otel_scope_name="galaxy"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"galaxy_cache_entries{cache="games",otel_scope_name="galaxy"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"galaxy_mail_deliveries{status="pending",otel_scope_name="galaxy"} 2"#),
            "{text}"
        );
        // Callbacks are read at each scrape, not once.
        size.store(5, Ordering::Relaxed);
        assert!(
            scrape
                .encode()
                .contains(r#"galaxy_cache_entries{cache="users",otel_scope_name="galaxy"} 5"#)
        );
    }
}
