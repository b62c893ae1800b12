//! The notification worker: retries push routes no gateway took. Email routes
//! never wait here: they are handed to the mail outbox at submit, and the mail
//! worker owns their retries (docs/decisions.md NOTIF-1).

use std::sync::Arc;

use galaxy_queue::{BatchOutcome, run_periodic};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::NotificationError;
use crate::model::event;
use crate::service::PgNotificationService;
use crate::store;

/// `last_error` of a push attempt that reached no gateway.
pub const NO_SUBSCRIBER: &str = "no gateway subscribed to the push stream";

impl PgNotificationService {
    /// One worker batch: claim due push routes, write each to the subscribed
    /// gateways, record the outcome.
    pub async fn run_batch(&self) -> Result<BatchOutcome, NotificationError> {
        let mut conn = self.conn().await?;
        let claimed =
            store::claim_due_push(&mut conn, self.settings.batch_size, self.settings.lease).await?;
        if claimed.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let mut delivered = Vec::new();
        let (mut failed, mut delays): (Vec<Uuid>, Vec<f64>) = (Vec::new(), Vec::new());
        for route in &claimed {
            let Some(account_id) = route.account_id else {
                continue;
            };
            let ev = event(
                route.intent_id,
                route.id,
                account_id,
                &route.kind,
                route.payload.to_string(),
                route.created_at,
            );
            if self.hub.publish(&ev) {
                tracing::debug!(
                    route_id = %route.id,
                    kind = %route.kind,
                    origin_request_id = route.origin_request_id.as_deref(),
                    "push route delivered by the worker"
                );
                delivered.push(route.id);
            } else {
                let failures = u32::try_from(route.attempts).unwrap_or(0) + 1;
                failed.push(route.id);
                delays.push(self.settings.backoff.delay(failures).as_secs_f64());
            }
        }
        store::mark_delivered(&mut conn, &delivered).await?;
        store::record_failures(
            &mut conn,
            &failed,
            &delays,
            self.settings.max_attempts,
            NO_SUBSCRIBER,
        )
        .await?;
        if !failed.is_empty() {
            tracing::info!(
                delivered = delivered.len(),
                failed = failed.len(),
                "push routes retried with no gateway subscribed"
            );
        }
        Ok(BatchOutcome {
            processed: claimed.len(),
            full: claimed.len() >= self.settings.batch_size as usize,
        })
    }

    /// Runs the worker every `worker_interval` until `shutdown`.
    pub fn spawn_worker(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let service = Arc::clone(self);
        let interval = service.settings.worker_interval;
        tokio::spawn(run_periodic(
            "notification",
            interval,
            shutdown,
            move || {
                let service = Arc::clone(&service);
                async move { service.run_batch().await }
            },
        ))
    }
}
