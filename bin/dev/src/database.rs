//! The stack's PostgreSQL: throwaway (the test harness's private server,
//! removed with its data when dropped) or kept under `--data DIR`; and the
//! one question cleanup asks it — which games ran engines, so their engine
//! volumes can be found (the runtime's query answers it).

use std::time::Duration;

use anyhow::Context;
use galaxy_testdb::PrivateServer;
use uuid::Uuid;

use crate::pg_server::PgServer;

pub enum Database {
    Throwaway(PrivateServer),
    Persistent(PgServer),
}

impl Database {
    /// A private server in a temporary directory. The test harness panics
    /// with its reason when PostgreSQL cannot start; that becomes an error.
    pub fn throwaway() -> anyhow::Result<Self> {
        std::panic::catch_unwind(PrivateServer::start)
            .map(Self::Throwaway)
            .map_err(|panic| {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown reason".to_owned());
                anyhow::anyhow!("cannot start PostgreSQL: {reason}")
            })
    }

    pub fn port(&self) -> u16 {
        match self {
            Self::Throwaway(s) => s.port(),
            Self::Persistent(s) => s.port(),
        }
    }

    /// `BACKEND_POSTGRES_DSN`.
    pub fn dsn(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?search_path=backend",
            self.port()
        )
    }

    /// Stops the server; a throwaway one is removed with its data.
    pub fn stop(self) -> anyhow::Result<()> {
        match self {
            Self::Throwaway(server) => {
                drop(server);
                Ok(())
            }
            Self::Persistent(mut server) => server.stop(),
        }
    }
}

/// Every game of the stack's database that ran an engine (none before
/// migrations ran): their engine volumes are the stack's.
pub async fn games(dsn: &str) -> anyhow::Result<Vec<Uuid>> {
    let url = galaxy_db::DatabaseUrl::parse(dsn, Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = tokio::time::timeout(Duration::from_secs(10), galaxy_db::establish(&url))
        .await
        .context("connecting took over 10 s")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(galaxy_runtime::recorded_games(&mut conn).await?)
}
