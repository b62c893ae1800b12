//! The database-error mapping against real failures of a real PostgreSQL:
//! a connection terminated under a query and a statement timeout are 503
//! `unavailable`; a constraint violation nobody handled is 500 `internal`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use actix_web::ResponseError;
use diesel_async::RunQueryDsl;
use galaxy_core::ApiError;
use galaxy_db::DbError;
use galaxy_testdb::TestDb;

fn status(e: diesel::result::Error) -> (u16, String) {
    let api = ApiError::from(DbError::from(e));
    (api.status_code().as_u16(), api.code().to_owned())
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_terminated_mid_query_is_unavailable() {
    let db = TestDb::new();
    let pool = db.pool();
    let mut victim = pool.get().await.unwrap();
    let Pid { pid } = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result(&mut victim)
        .await
        .unwrap();
    let query = tokio::spawn(async move {
        diesel::sql_query("SELECT pg_sleep(10)")
            .execute(&mut victim)
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut killer = pool.get().await.unwrap();
    diesel::sql_query("SELECT pg_terminate_backend($1)")
        .bind::<diesel::sql_types::Integer, _>(pid)
        .execute(&mut killer)
        .await
        .unwrap();
    let err = query.await.unwrap().unwrap_err();
    assert_eq!(status(err), (503, "unavailable".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_timeout_is_unavailable_and_a_stray_violation_internal() {
    let db = TestDb::new();
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query("SET statement_timeout = '100ms'")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = diesel::sql_query("SELECT pg_sleep(2)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(status(err), (503, "unavailable".to_owned()));
    diesel::sql_query("CREATE TEMP TABLE t (id int PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();
    let insert = "INSERT INTO t VALUES (1)";
    diesel::sql_query(insert).execute(&mut conn).await.unwrap();
    let err = diesel::sql_query(insert)
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(status(err), (500, "internal".to_owned()));
}
