//! Reading the test database directly, for assertions.

use crate::TestDb;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The value of `sql`, a query answering one `bigint` column named `n`.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    let mut conn = db.pool().get().await.expect("a test database connection");
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}
