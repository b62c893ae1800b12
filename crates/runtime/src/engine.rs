//! HTTP client for the engine protocol (SYSTEM.md §7).

use std::time::Duration;

use galaxy_core::percent::encode_component;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::error::RuntimeError;

#[derive(Clone)]
pub struct EngineClient {
    http: reqwest::Client,
}

impl Default for EngineClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The engine's `{"error": reason}`, or the raw body.
async fn reason(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(text)
}

impl EngineClient {
    #[allow(
        clippy::expect_used,
        reason = "a client with this static configuration always builds"
    )]
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                // Engines live on a private bridge: a configured HTTP proxy
                // must never be used to reach them.
                .no_proxy()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(15))
                .build()
                .expect("static HTTP client configuration"),
        }
    }

    /// One health probe with a short bound.
    pub async fn healthy(&self, endpoint: &str) -> bool {
        matches!(
            self.http
                .get(format!("{endpoint}/healthz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await,
            Ok(r) if r.status().is_success()
        )
    }

    pub async fn current_turn(&self, endpoint: &str) -> Result<i32, RuntimeError> {
        let v = self
            .call(self.http.get(format!("{endpoint}/v1/status")))
            .await?;
        v.get("turn")
            .and_then(Value::as_i64)
            .and_then(|t| i32::try_from(t).ok())
            .ok_or_else(|| RuntimeError::EngineUnavailable("status without a turn".into()))
    }

    /// Asks for turn `turn` exactly (idempotent on the reference engine).
    pub async fn generate_turn(&self, endpoint: &str, turn: i32) -> Result<i32, RuntimeError> {
        let v = self
            .call(
                self.http
                    .post(format!("{endpoint}/v1/turns"))
                    .json(&json!({ "turn": turn })),
            )
            .await?;
        v.get("turn")
            .and_then(Value::as_i64)
            .and_then(|t| i32::try_from(t).ok())
            .ok_or_else(|| RuntimeError::EngineUnavailable("turn answer without a turn".into()))
    }

    pub async fn submit_orders(
        &self,
        endpoint: &str,
        race: &str,
        orders: &Value,
    ) -> Result<(), RuntimeError> {
        let url = format!("{endpoint}/v1/players/{}/orders", encode_component(race));
        self.call(self.http.post(url).json(orders)).await.map(drop)
    }

    pub async fn report(
        &self,
        endpoint: &str,
        race: &str,
        turn: Option<u32>,
    ) -> Result<Value, RuntimeError> {
        let mut req = self.http.get(format!(
            "{endpoint}/v1/players/{}/report",
            encode_component(race)
        ));
        if let Some(t) = turn {
            req = req.query(&[("turn", t)]);
        }
        self.call(req).await
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, RuntimeError> {
        let resp = req
            .send()
            .await
            .map_err(|e| RuntimeError::EngineUnavailable(e.without_url().to_string()))?;
        match resp.status() {
            s if s.is_success() => resp
                .json()
                .await
                .map_err(|e| RuntimeError::EngineUnavailable(format!("bad engine answer: {e}"))),
            StatusCode::BAD_REQUEST => Err(RuntimeError::EngineRejected(reason(resp).await)),
            StatusCode::NOT_FOUND => Err(RuntimeError::EngineNotFound(reason(resp).await)),
            s => Err(RuntimeError::EngineUnavailable(format!(
                "engine answered {s}: {}",
                reason(resp).await
            ))),
        }
    }
}
