use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel_async::RunQueryDsl;
use galaxy_db::{DatabaseUrl, Pool, PoolSettings, build_pool};

use crate::server::PrivateServer;

/// The server every test database of this process lives on.
struct Shared {
    /// Admin DSN (database `postgres` or whatever the URL names).
    admin: DatabaseUrl,
    /// Name of the migrated template database.
    template: String,
    /// Kept alive for the whole process; the watchdog removes it afterwards.
    _server: Option<PrivateServer>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// An isolated, migrated database, dropped when this value is dropped.
pub struct TestDb {
    name: String,
    url: DatabaseUrl,
    pool: Pool,
}

impl TestDb {
    /// A fresh database cloned from the migrated template.
    pub fn new() -> Self {
        let shared = shared();
        let name = format!(
            "galaxy_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = shared.admin.clone();
        let (n, t) = (name.clone(), shared.template.clone());
        on_own_runtime(
            async move { exec(&admin, &format!("CREATE DATABASE {n} TEMPLATE {t}")).await },
        )
        .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        let url = shared.admin.with_database(&name);
        let pool = build_pool(
            &url,
            PoolSettings {
                max_connections: 8,
                acquire_timeout: Duration::from_secs(10),
            },
        );
        Self { name, url, pool }
    }

    /// A pool on this database (connections open lazily, on the caller's runtime).
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The database's DSN in `BACKEND_POSTGRES_DSN` form (`?search_path=backend`).
    pub fn dsn(&self) -> String {
        let driver = url::Url::parse(self.url.driver_url()).expect("valid url");
        let mut plain = driver.clone();
        plain.set_query(None);
        format!("{plain}?search_path={}", self.url.schema())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = shared().admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = on_own_runtime(async move { exec(&admin, &sql).await }) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let (admin_dsn, server) = match std::env::var("GALAXY_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let server = PrivateServer::start();
                (server.admin_url(), Some(server))
            }
        };
        let admin = DatabaseUrl::parse(&admin_dsn, STATEMENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("GALAXY_TEST_DATABASE_URL: {e}"));
        let template = template_name();
        let (a, t) = (admin.clone(), template.clone());
        on_own_runtime(async move { prepare(&a, &t, server_is_shared()).await })
            .unwrap_or_else(|e| panic!("prepare test template database: {e}"));
        Shared {
            admin,
            template,
            _server: server,
        }
    })
}

fn server_is_shared() -> bool {
    std::env::var("GALAXY_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

/// The template is named after the migration set, so a shared server keeps
/// one template per schema version and reuses it across runs.
fn template_name() -> String {
    use diesel::migration::MigrationSource;
    let names: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&galaxy_db::MIGRATIONS)
        .expect("embedded migrations")
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    // FNV-1a: stable across processes and builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in names.join(",").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("galaxy_tpl_{hash:016x}")
}

/// Creates and migrates the template unless it exists; on a shared server,
/// also drops databases left by test processes of this host that are gone.
async fn prepare(admin: &DatabaseUrl, template: &str, shared: bool) -> Result<(), String> {
    use diesel::sql_types::{Bool, Text};

    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        exists: bool,
    }

    let mut conn = galaxy_db::establish(admin)
        .await
        .map_err(|e| e.to_string())?;
    // Serialise template creation between test processes.
    diesel::sql_query("SELECT pg_advisory_lock(7106504)")
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if shared {
        let leftovers: Vec<Name> = diesel::sql_query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'galaxy\\_test\\_%'",
        )
        .load(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        for db in leftovers {
            let pid = db
                .datname
                .split('_')
                .nth(2)
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    db.datname
                ))
                .execute(&mut conn)
                .await;
            }
        }
    }
    let exists: Exists = diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{template}') AS exists"
    ))
    .get_result(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let result = if exists.exists {
        Ok(())
    } else {
        create_template(&mut conn, admin, template).await
    };
    let _ = diesel::sql_query("SELECT pg_advisory_unlock(7106504)")
        .execute(&mut conn)
        .await;
    result
}

async fn create_template(
    conn: &mut galaxy_db::AsyncPgConnection,
    admin: &DatabaseUrl,
    template: &str,
) -> Result<(), String> {
    let building = format!("{template}_building");
    for sql in [
        format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
        format!("CREATE DATABASE {building}"),
    ] {
        diesel::sql_query(sql)
            .execute(conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    galaxy_db::migrate(&admin.with_database(&building))
        .await
        .map_err(|e| e.to_string())?;
    // Renamed only once complete, so a crash never leaves a half-migrated template.
    diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
        .execute(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn exec(url: &DatabaseUrl, sql: &str) -> Result<(), String> {
    let mut conn = galaxy_db::establish(url).await.map_err(|e| e.to_string())?;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Runs `fut` to completion on a private multi-threaded runtime in its own
/// thread, so the harness works from sync code, `Drop`, and any test runtime.
fn on_own_runtime<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("test harness runtime")
            .block_on(fut)
    })
    .join()
    .expect("test harness thread panicked")
}
