//! Request latency with trace/metric export off (`none`) versus OTLP to an
//! unreachable collector (a closed port). Export runs on the SDK's batch
//! threads, so the two should match within noise.
//!
//! Uses the `galaxy-backend` binary of the same profile:
//! `cargo build -p galaxy-backend && cargo bench -p galaxy-integration --profile dev --bench telemetry_latency`
//! (or `--release` for both).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
// Printing the figures is this program's whole output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use galaxy_integration::{Backend, BackendBuilder, free_port};
use galaxy_testdb::TestDb;

const WARMUP: usize = 200;
const REQUESTS: usize = 2_000;

struct Figures {
    mean: Duration,
    p50: Duration,
    p99: Duration,
    shutdown: Duration,
}

async fn measure(backend: &mut Backend) -> Figures {
    backend.wait_ready(Duration::from_secs(20)).await;
    let url = backend.url("/healthz");
    for _ in 0..WARMUP {
        backend.client.get(&url).send().await.expect("warm-up");
    }
    let mut samples = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let res = backend.client.get(&url).send().await.expect("request");
        assert!(res.status().is_success(), "{}", res.status());
        let _ = res.bytes().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len()).unwrap();
    let started = Instant::now();
    let status = backend.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    Figures {
        mean,
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        shutdown: started.elapsed(),
    }
}

fn print(label: &str, f: &Figures) {
    println!(
        "{label:<28} mean {:>8.1} µs   p50 {:>8.1} µs   p99 {:>8.1} µs   SIGTERM→exit {:>6.0} ms",
        f.mean.as_secs_f64() * 1e6,
        f.p50.as_secs_f64() * 1e6,
        f.p99.as_secs_f64() * 1e6,
        f.shutdown.as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let db = TestDb::new();
        let mut none = BackendBuilder::new(&db.dsn())
            .env("BACKEND_OTEL_TRACES_EXPORTER", "none")
            .env("BACKEND_OTEL_METRICS_EXPORTER", "none")
            .spawn();
        let baseline = measure(&mut none).await;

        let closed = free_port();
        let mut unreachable = BackendBuilder::new(&db.dsn())
            // Export (and fail) often, so the run overlaps many attempts.
            .exporting("otlp", 500)
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{closed}"),
            )
            .spawn();
        let down = measure(&mut unreachable).await;

        println!("GET /healthz, {REQUESTS} sequential requests after {WARMUP} warm-up");
        print("exporters none", &baseline);
        print("otlp, collector unreachable", &down);
    });
}
