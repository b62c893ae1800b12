//! The schema contract: exactly the tables of SYSTEM.md §4, migrated once.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use galaxy_testdb::TestDb;

/// Every table in schema `backend`. Adding a table without listing it here
/// fails this test on purpose.
const EXPECTED_TABLES: &[&str] = &[
    "__diesel_schema_migrations",
    "account_reactions",
    "accounts",
    "admin_audit",
    "admin_login_attempts",
    "admin_sessions",
    "admins",
    "auth_challenges",
    "auth_sessions",
    "engine_versions",
    "game_members",
    "game_turns",
    "games",
    "mail_attempts",
    "mail_deliveries",
    "notification_intents",
    "notification_routes",
    "runtime_operation_log",
    "runtime_records",
    "user_country_counters",
];

/// Versions of every migration directory, in order (`00001`, `00002`, …).
fn all_versions() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.split('_').next().map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn tables(db: &TestDb) -> Vec<String> {
    let mut conn = db.pool().get().await.unwrap();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'backend' ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.name).collect()
}

async fn fresh_database_without_schema(db: &TestDb) {
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query("DROP SCHEMA backend CASCADE")
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn migrated_schema_has_exactly_the_contract_tables() {
    let db = TestDb::new();
    assert_eq!(tables(&db).await, EXPECTED_TABLES);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrating_twice_applies_nothing() {
    let db = TestDb::new();
    fresh_database_without_schema(&db).await;
    let first = galaxy_db::migrate(db.url()).await.unwrap();
    assert_eq!(first, all_versions(), "first run applies every migration");
    assert_eq!(first[0], "00001");
    let second = galaxy_db::migrate(db.url()).await.unwrap();
    assert!(second.is_empty(), "second run applied {second:?}");
    assert_eq!(tables(&db).await, EXPECTED_TABLES);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrators_migrate_once() {
    let db = TestDb::new();
    fresh_database_without_schema(&db).await;
    let runs = futures_util::future::join_all((0..4).map(|_| {
        let url = db.url().clone();
        tokio::spawn(async move { galaxy_db::migrate(&url).await.unwrap() })
    }))
    .await;
    let applied: usize = runs.into_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(
        applied,
        all_versions().len(),
        "every migration applied exactly once across the migrators"
    );
    assert_eq!(tables(&db).await, EXPECTED_TABLES);
}
