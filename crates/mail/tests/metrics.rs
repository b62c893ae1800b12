//! Worker metrics: one `galaxy.worker.batch.duration` sample per mail batch.
//! Its own test binary, because it installs the process-global telemetry.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]

mod common;

use std::time::Duration;

use common::*;
use galaxy_mail::TlsMode;
use galaxy_telemetry::{MetricsExporter, Telemetry, TelemetrySettings, TracesExporter};
use galaxy_testdb::TestDb;
use galaxy_testsmtp::SmtpServer;
use tokio_util::sync::CancellationToken;

/// `(outcome, count)` of every `worker="mail"` batch-duration series.
fn mail_batch_series(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with("galaxy_worker_batch_duration_seconds_count{"))
        .filter(|l| l.contains(r#"worker="mail""#))
        .map(|l| {
            let outcome = l
                .split(r#"outcome=""#)
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_owned();
            let n = l.rsplit_once(' ').unwrap().1.parse().unwrap();
            (outcome, n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_mail_batch_is_counted_once() {
    let guard = Telemetry::new(TelemetrySettings {
        log_filter: "warn".to_owned(),
        traces: TracesExporter::None,
        metrics: MetricsExporter::Prometheus,
        prometheus_listen: None,
        service_name: "galaxy-mail-test".to_owned(),
    })
    .install(std::io::sink)
    .unwrap();
    let scrape = guard.prometheus().expect("prometheus exporter");

    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let stats = w.stats();
    let id = enqueue(&pool, "metrics@example.test", "123456").await;
    let shutdown = CancellationToken::new();
    let handle = w.spawn(shutdown.clone());
    for _ in 0..100 {
        if row(&pool, id).await.status == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(row(&pool, id).await.status, "sent");
    shutdown.cancel();
    handle.await.unwrap();

    let series = mail_batch_series(&scrape.encode());
    let outcomes: Vec<&str> = series.iter().map(|(o, _)| o.as_str()).collect();
    for (outcome, _) in &series {
        assert!(
            ["processed", "idle", "failed"].contains(&outcome.as_str()),
            "a second series per batch: {outcomes:?}"
        );
    }
    let processed: f64 = series
        .iter()
        .filter(|(o, _)| o == "processed")
        .map(|(_, n)| n)
        .sum();
    #[allow(clippy::cast_precision_loss)]
    let batches = stats.batches() as f64;
    assert_eq!(processed, batches, "{series:?}");
}
