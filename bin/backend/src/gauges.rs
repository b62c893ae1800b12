//! Queue and container gauges: mail deliveries and notification routes by
//! status, runtime containers by observed state, each counted by its own
//! module's query. Every `INTERVAL` the counts refresh an in-memory
//! snapshot; the gauges read the snapshot (gauge callbacks must not do I/O).
//! Only runs when a metrics exporter is configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use galaxy_db::Pool;
use galaxy_runtime::ObservedState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_secs(15);

/// Label values the schema allows, so every series exists — at 0 — from the
/// first scrape.
const MAIL_STATUSES: &[&str] = &["pending", "retrying", "sent", "dead_lettered"];
const ROUTE_CHANNELS: &[&str] = &[
    galaxy_notification::CHANNEL_PUSH,
    galaxy_notification::CHANNEL_EMAIL,
];

type Snapshot = Arc<Mutex<HashMap<(&'static str, String, String), i64>>>;

fn value(snapshot: &Snapshot, family: &'static str, a: &str, b: &str) -> i64 {
    snapshot
        .lock()
        .ok()
        .and_then(|m| m.get(&(family, a.to_owned(), b.to_owned())).copied())
        .unwrap_or(0)
}

fn register(snapshot: &Snapshot) {
    let s = snapshot.clone();
    galaxy_telemetry::register_gauge(
        "galaxy.mail.deliveries",
        "Mail outbox rows by status",
        move |o| {
            for status in MAIL_STATUSES {
                o.observe(value(&s, "mail", status, ""), &[("status", status)]);
            }
        },
    );
    let s = snapshot.clone();
    galaxy_telemetry::register_gauge(
        "galaxy.notification.routes",
        "Notification routes by status and channel",
        move |o| {
            for status in galaxy_notification::route_statuses() {
                for channel in ROUTE_CHANNELS {
                    o.observe(
                        value(&s, "route", status, channel),
                        &[("status", status), ("channel", channel)],
                    );
                }
            }
        },
    );
    let s = snapshot.clone();
    galaxy_telemetry::register_gauge(
        "galaxy.runtime.containers",
        "Engine containers by observed state",
        move |o| {
            for state in ObservedState::ALL {
                let state = state.as_str();
                o.observe(value(&s, "container", state, ""), &[("state", state)]);
            }
        },
    );
}

async fn refresh(pool: &Pool, snapshot: &Snapshot) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let mail = galaxy_mail::status_counts(&mut conn).await?;
    let routes = galaxy_notification::route_counts(&mut conn).await?;
    let containers = galaxy_runtime::container_counts(&mut conn).await?;
    let mut fresh: HashMap<(&'static str, String, String), i64> = [
        ("pending", mail.pending),
        ("retrying", mail.retrying),
        ("sent", mail.sent),
        ("dead_lettered", mail.dead_lettered),
    ]
    .into_iter()
    .map(|(status, n)| (("mail", status.to_owned(), String::new()), n))
    .collect();
    fresh.extend(
        routes
            .into_iter()
            .map(|(status, channel, n)| (("route", status, channel), n)),
    );
    fresh.extend(
        containers
            .into_iter()
            .map(|(state, n)| (("container", state.as_str().to_owned(), String::new()), n)),
    );
    if let Ok(mut m) = snapshot.lock() {
        *m = fresh;
    }
    Ok(())
}

/// Registers the gauges and starts the refresher; `None` without a metrics
/// exporter.
pub fn spawn(pool: Pool, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    if !galaxy_telemetry::metrics_enabled() {
        return None;
    }
    let snapshot = Snapshot::default();
    register(&snapshot);
    Some(tokio::spawn(async move {
        loop {
            if let Err(e) = refresh(&pool, &snapshot).await {
                tracing::warn!(error = format!("{e:#}"), "cannot refresh the queue gauges");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(INTERVAL) => {}
            }
        }
    }))
}
