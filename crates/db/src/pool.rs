use std::sync::Arc;
use std::time::Duration;

use diesel_async::pooled_connection::deadpool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use galaxy_core::ReadinessCheck;

use crate::dsn::DatabaseUrl;

pub type Pool = deadpool::Pool<AsyncPgConnection>;
pub type PooledConn = deadpool::Object<AsyncPgConnection>;

/// Errors from getting a connection or running a query.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool::PoolError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("cannot connect: {0}")]
    Connect(#[from] diesel::ConnectionError),
}

#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: usize,
    /// How long a caller waits for a free or new connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A pool that replaces connections found broken at checkout, so a restarted
/// database is picked up again without restarting the process.
#[allow(
    clippy::expect_used,
    reason = "deadpool's build fails only without a runtime for its timeouts, and one is set"
)]
pub fn build_pool(url: &DatabaseUrl, settings: PoolSettings) -> Pool {
    // No `SELECT 1` per checkout: a connection whose socket closed already
    // reports itself broken (docs/decisions.md D5).
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        url.driver_url(),
        config,
    );
    deadpool::Pool::builder(manager)
        .max_size(settings.max_connections)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.acquire_timeout))
        .recycle_timeout(Some(settings.acquire_timeout))
        .runtime(::deadpool::Runtime::Tokio1)
        .build()
        .expect("pool settings are valid with a runtime set")
}

/// One connection outside the pool (migrations, admin tasks).
pub async fn establish(url: &DatabaseUrl) -> Result<AsyncPgConnection, DbError> {
    Ok(AsyncPgConnection::establish(url.driver_url()).await?)
}

/// Readiness: PostgreSQL answers `SELECT 1` within a short bound.
pub struct PostgresCheck {
    pool: Pool,
    timeout: Duration,
}

impl PostgresCheck {
    pub fn new(pool: Pool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            timeout: Duration::from_secs(2),
        })
    }
}

impl ReadinessCheck for PostgresCheck {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let ping = async {
                let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
                diesel::sql_query("SELECT 1")
                    .execute(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            };
            match tokio::time::timeout(self.timeout, ping).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("postgres unreachable: {e}")),
                Err(_) => Err("postgres unreachable: timed out".to_owned()),
            }
        })
    }
}
