//! Per-client-address token buckets on `/api/v1/auth/*` and on push
//! upgrades. In process with `governor`; with `GATEWAY_REDIS_URL`, one
//! budget for every gateway, kept in Redis by one atomic script (GCRA: a
//! single timestamp per address, so the check and the spend cannot race).
//! When Redis does not answer, the in-process buckets decide, the log says
//! so once per outage, and a counter counts every such decision.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use galaxy_core::env::{RateLimit, Secret};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Which budget a request spends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Auth,
    Push,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Auth => "auth",
            Scope::Push => "push",
        }
    }
}

/// How long Redis may take before the local buckets decide instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, how long requests go straight to the local
/// buckets (so an outage costs one timeout, not one per request).
const REDIS_BACKOFF: Duration = Duration::from_secs(2);

/// GCRA over one key: the value is the theoretical arrival time (ms) of
/// the next request. ARGV: emission interval (ms), burst. Returns
/// {allowed (0|1), wait before retry (ms)}. Time is Redis's own, so every
/// gateway agrees on it.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local over = new_tat - now - burst * interval
if over > 0 then return {0, over} end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, 0}
";

pub struct Limits {
    quota: RateLimit,
    auth: DefaultKeyedRateLimiter<IpAddr>,
    push: DefaultKeyedRateLimiter<IpAddr>,
    redis: Option<Arc<SharedBudget>>,
}

impl Limits {
    pub fn new(quota: RateLimit, redis_url: Option<&Secret>) -> anyhow::Result<Self> {
        let burst = NonZeroU32::new(quota.count).unwrap_or(NonZeroU32::MIN);
        let per_token = quota.window / quota.count.max(1);
        let local = Quota::with_period(per_token.max(Duration::from_nanos(1)))
            .ok_or_else(|| anyhow::anyhow!("rate limit window too short"))?
            .allow_burst(burst);
        let redis = match redis_url {
            Some(url) => Some(Arc::new(SharedBudget::new(url.expose())?)),
            None => None,
        };
        Ok(Self {
            quota,
            auth: RateLimiter::keyed(local),
            push: RateLimiter::keyed(local),
            redis,
        })
    }

    /// Spends one token of `ip`'s `scope` budget; `Err(wait)` when empty.
    pub async fn check(&self, scope: Scope, ip: IpAddr) -> Result<(), Duration> {
        if let Some(redis) = &self.redis {
            match redis.check(scope, ip, self.quota).await {
                Some(decision) => return decision,
                None => metrics::limiter_fallback(),
            }
        }
        self.check_local(scope, ip)
    }

    fn check_local(&self, scope: Scope, ip: IpAddr) -> Result<(), Duration> {
        let limiter = match scope {
            Scope::Auth => &self.auth,
            Scope::Push => &self.push,
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Keeps the in-process tables small and, with Redis, connects to it in
    /// the background (the gateway serves from the local buckets until then).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if let Some(redis) = &self.redis {
            let redis = Arc::clone(redis);
            let stop = shutdown.clone();
            tokio::spawn(async move { redis.connect_loop(stop).await });
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            self.auth.retain_recent();
            self.push.retain_recent();
        }
    }
}

/// The Redis side of the limits.
struct SharedBudget {
    client: redis::Client,
    conn: OnceCell<redis::aio::ConnectionManager>,
    script: redis::Script,
    /// Until when requests skip Redis after a failure.
    backoff_until: std::sync::Mutex<Option<Instant>>,
    down: AtomicBool,
}

impl SharedBudget {
    fn new(url: &str) -> anyhow::Result<Self> {
        // The URL may hold a password: the error must not echo it.
        let client = redis::Client::open(url)
            .map_err(|_| anyhow::anyhow!("GATEWAY_REDIS_URL is not a usable Redis URL"))?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
            script: redis::Script::new(GCRA),
            backoff_until: std::sync::Mutex::new(None),
            down: AtomicBool::new(false),
        })
    }

    async fn connect_loop(&self, shutdown: CancellationToken) {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2);
        let mut delay = Duration::from_millis(200);
        while self.conn.get().is_none() {
            match redis::aio::ConnectionManager::new_with_config(
                self.client.clone(),
                config.clone(),
            )
            .await
            {
                Ok(conn) => {
                    let _first = self.conn.set(conn);
                    tracing::info!("rate limits are shared through Redis");
                    return;
                }
                Err(e) => {
                    self.mark_down(&e.to_string());
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn in_backoff(&self) -> bool {
        let guard = self
            .backoff_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.is_some_and(|until| Instant::now() < until)
    }

    fn mark_down(&self, error: &str) {
        *self
            .backoff_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Instant::now() + REDIS_BACKOFF);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error,
                "Redis unreachable: rate limits fall back to this gateway's own buckets"
            );
        }
    }

    fn mark_up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis reachable again: rate limits are shared");
        }
    }

    /// `None`: Redis could not decide, the caller falls back.
    async fn check(
        &self,
        scope: Scope,
        ip: IpAddr,
        quota: RateLimit,
    ) -> Option<Result<(), Duration>> {
        if self.in_backoff() {
            return None;
        }
        let mut conn = self.conn.get()?.clone();
        let interval_ms = (quota.window.as_millis() / u128::from(quota.count.max(1))).max(1);
        let key = format!("galaxy:gateway:limit:{}:{ip}", scope.name());
        let mut invocation = self.script.key(key);
        invocation
            .arg(u64::try_from(interval_ms).unwrap_or(u64::MAX))
            .arg(quota.count);
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok((allowed, wait_ms))) => {
                self.mark_up();
                Some(if allowed == 1 {
                    Ok(())
                } else {
                    Err(Duration::from_millis(
                        u64::try_from(wait_ms).unwrap_or(1000),
                    ))
                })
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.mark_down("timed out");
                None
            }
        }
    }
}

/// `Retry-After` seconds for a wait (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_then_refusals_with_a_wait() {
        let limits = Limits::new("3/1m".parse().unwrap(), None).unwrap();
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.check(Scope::Auth, ip).await.is_ok());
        }
        let wait = limits.check(Scope::Auth, ip).await.unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!((10..=20).contains(&retry_after_secs(wait)));
        // Budgets are per scope and per address.
        assert!(limits.check(Scope::Push, ip).await.is_ok());
        assert!(
            limits
                .check(Scope::Auth, "203.0.113.2".parse().unwrap())
                .await
                .is_ok()
        );
    }
}
