//! Failure injection for other crates' tests (feature `testing`).

use diesel_async::RunQueryDsl;

use crate::pool::{DbError, Pool};

/// Makes every later `UPDATE` of `table` fail inside PostgreSQL, so a test
/// can see what a failed commit leaves in the caches.
pub async fn refuse_updates(pool: &Pool, table: &str) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::sql_query(
        "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$",
    )
    .execute(&mut conn)
    .await?;
    diesel::sql_query(format!(
        "CREATE TRIGGER refuse_updates BEFORE UPDATE ON {table} \
         FOR EACH ROW EXECUTE FUNCTION refuse()"
    ))
    .execute(&mut conn)
    .await?;
    Ok(())
}
