//! Periodic re-check of the sessions open sockets were opened with: a
//! logout, a revoked session or a blocked account closes its sockets (4001)
//! within one `GATEWAY_WS_REVALIDATE_INTERVAL`. Only a 401 closes: a
//! backend that is away or failing keeps the sockets open.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backend_api::{BackendApi, CallError};
use crate::hub::{Hub, close};

/// Checks in flight at once (each is one cached `GET /me` on a backend).
const CONCURRENCY: usize = 16;

pub async fn run(
    hub: Arc<Hub>,
    api: Arc<BackendApi>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let sessions = hub.sessions_snapshot();
        futures_util::stream::iter(sessions)
            .for_each_concurrent(CONCURRENCY, |(key, token, client_ip)| {
                let (hub, api) = (Arc::clone(&hub), Arc::clone(&api));
                async move {
                    match api.account_of(token.expose(), client_ip).await {
                        Err(CallError::Unauthorized) => {
                            tracing::info!("session ended; closing its sockets");
                            hub.close_session(key, close::SESSION_INVALID);
                        }
                        Err(CallError::Unavailable(e)) => {
                            tracing::debug!(error = %e, "revalidation deferred: backend unavailable");
                        }
                        Ok(_) | Err(CallError::Rejected(_)) => {}
                    }
                }
            })
            .await;
    }
}
