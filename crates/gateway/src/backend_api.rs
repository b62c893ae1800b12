//! The gateway's own calls to the backend, made for a client: the token
//! check before an upgrade (and on revalidation) and the inbox replay of a
//! resume. Each carries the client's address as `X-Forwarded-For` — the
//! gateway's verdict, as on proxied requests — and the request id.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use crate::upstream::Upstreams;

/// The backend's answer to a call made for a client.
#[derive(Debug)]
pub enum CallError {
    /// 401: the token is not (or no longer) a valid session.
    Unauthorized,
    /// 404 (an unknown resume cursor) or another 4xx: the client's fault.
    Rejected(u16),
    /// No backend answered, or it failed: not the client's fault.
    Unavailable(String),
}

#[derive(Debug, Deserialize)]
struct Me {
    id: Uuid,
}

/// One inbox item as `GET /api/v1/user/notifications?after=` lists it.
#[derive(Debug, Deserialize)]
pub struct InboxItem {
    pub id: Uuid,
    pub event_id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
struct InboxPage {
    items: Vec<InboxItem>,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct BackendApi {
    upstreams: Arc<Upstreams>,
}

impl BackendApi {
    pub fn new(upstreams: Arc<Upstreams>) -> Self {
        Self { upstreams }
    }

    async fn get(
        &self,
        path: &str,
        token: &str,
        client: IpAddr,
    ) -> Result<reqwest::Response, CallError> {
        let mut tried = Vec::new();
        loop {
            let Some(backend) = self.upstreams.pick(&tried) else {
                return Err(CallError::Unavailable("no backend is reachable".into()));
            };
            let mut req = self
                .upstreams
                .client()
                .get(backend.url(path))
                .header(reqwest::header::HOST, &backend.host)
                .bearer_auth(token)
                .header("x-forwarded-for", client.to_string())
                .timeout(CALL_TIMEOUT);
            if let Some(id) = galaxy_core::current_request_id() {
                req = req.header("x-request-id", id);
            }
            match req.send().await {
                Ok(r) => return Ok(r),
                // Never reached the backend: another may serve it.
                Err(e) if e.is_connect() => {
                    backend.mark_unreachable();
                    tried.push(backend);
                }
                Err(e) => return Err(CallError::Unavailable(e.without_url().to_string())),
            }
        }
    }

    fn classify(status: reqwest::StatusCode) -> Result<(), CallError> {
        match status.as_u16() {
            200..=299 => Ok(()),
            401 => Err(CallError::Unauthorized),
            s @ 400..=499 => Err(CallError::Rejected(s)),
            s => Err(CallError::Unavailable(format!("backend answered {s}"))),
        }
    }

    /// The account a session token belongs to (`GET /api/v1/user/me`).
    pub async fn account_of(&self, token: &str, client: IpAddr) -> Result<Uuid, CallError> {
        let r = self.get("/api/v1/user/me", token, client).await?;
        Self::classify(r.status())?;
        r.json::<Me>()
            .await
            .map(|me| me.id)
            .map_err(|e| CallError::Unavailable(format!("unreadable account: {e}")))
    }

    /// Up to `limit` inbox items after `since`, oldest first.
    pub async fn inbox_after(
        &self,
        token: &str,
        client: IpAddr,
        since: Uuid,
        limit: usize,
    ) -> Result<Vec<InboxItem>, CallError> {
        const PAGE: usize = 200;
        let mut items: Vec<InboxItem> = Vec::new();
        let mut cursor = since;
        while items.len() < limit {
            let path = format!("/api/v1/user/notifications?after={cursor}&page_size={PAGE}");
            let r = self.get(&path, token, client).await?;
            Self::classify(r.status())?;
            let page: InboxPage = r
                .json()
                .await
                .map_err(|e| CallError::Unavailable(format!("unreadable inbox page: {e}")))?;
            let full = page.items.len() == PAGE;
            items.extend(page.items);
            match items.last() {
                Some(last) if full => cursor = last.id,
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }
}
