//! Queue and container gauges computed from the database: mail deliveries
//! and notification routes by status, runtime containers by observed state.
//! One grouped query every `INTERVAL` updates an in-memory snapshot; the
//! gauges read the snapshot (gauge callbacks must not do I/O). Only runs when
//! a metrics exporter is configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use galaxy_db::Pool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_secs(15);

/// Label values the schema allows (CHECK constraints of 00001_init), so
/// every series exists — at 0 — from the first scrape.
const MAIL_STATUSES: &[&str] = &["pending", "retrying", "sent", "dead_lettered"];
const ROUTE_STATUSES: &[&str] = &[
    "pending",
    "retrying",
    "delivered",
    "skipped",
    "dead_lettered",
];
const ROUTE_CHANNELS: &[&str] = &["push", "email"];
const CONTAINER_STATES: &[&str] = &["absent", "starting", "running", "exited", "failed"];

const QUERY: &str = "\
    SELECT 'mail' AS family, status AS a, '' AS b, count(*) AS n \
      FROM mail_deliveries GROUP BY status \
    UNION ALL \
    SELECT 'route', status, channel, count(*) \
      FROM notification_routes GROUP BY status, channel \
    UNION ALL \
    SELECT 'container', observed_state, '', count(*) \
      FROM runtime_records GROUP BY observed_state";

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    family: String,
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

type Snapshot = Arc<Mutex<HashMap<(String, String, String), i64>>>;

fn value(snapshot: &Snapshot, family: &str, a: &str, b: &str) -> i64 {
    snapshot
        .lock()
        .ok()
        .and_then(|m| {
            m.get(&(family.to_owned(), a.to_owned(), b.to_owned()))
                .copied()
        })
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
            for status in ROUTE_STATUSES {
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
            for state in CONTAINER_STATES {
                o.observe(value(&s, "container", state, ""), &[("state", state)]);
            }
        },
    );
}

async fn refresh(pool: &Pool, snapshot: &Snapshot) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let rows: Vec<Row> = diesel::sql_query(QUERY).load(&mut conn).await?;
    let fresh = rows
        .into_iter()
        .map(|r| ((r.family, r.a, r.b), r.n))
        .collect();
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
