use diesel_async::AsyncMigrationHarness;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::dsn::{DatabaseUrl, is_plain_identifier};
use crate::pool::{DbError, establish};

/// Every migration in the repository's root `migrations/`, embedded.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Serialises migrators across processes (any constant; "galaxy" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0000_6761_6c61_7879;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("migration failed: {0}")]
    Migration(String),
}

crate::query_error_into_db!(MigrateError);

/// Creates the schema and applies pending migrations under a session-level
/// advisory lock, so two processes starting together migrate once. Returns
/// the versions applied by this call (empty when already up to date).
///
/// Needs a multi-threaded tokio runtime (the harness uses `block_in_place`).
pub async fn migrate(url: &DatabaseUrl) -> Result<Vec<String>, MigrateError> {
    let schema = url.schema();
    if !is_plain_identifier(schema) {
        return Err(MigrateError::Migration(format!(
            "bad schema name {schema:?}"
        )));
    }
    let mut conn = establish(url).await?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await?;
    let (mut conn, result) = apply(conn, schema).await;
    // The lock also ends with the session; unlocking explicitly lets a waiting
    // process proceed at once.
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await;
    result
}

async fn apply(
    mut conn: AsyncPgConnection,
    schema: &str,
) -> (AsyncPgConnection, Result<Vec<String>, MigrateError>) {
    if let Err(e) = diesel::sql_query(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut conn)
        .await
    {
        return (conn, Err(e.into()));
    }
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| MigrateError::Migration(e.to_string()));
    (harness.into_inner(), applied)
}
