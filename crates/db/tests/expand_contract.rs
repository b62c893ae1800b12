//! Migrations are expand/contract (SYSTEM.md §12): during a rolling deploy
//! the previous release runs on the new schema, so a migration may add
//! tables, columns, indexes and constraints, but never drop, rename or
//! retype a table or column the previous release reads or writes, and never
//! add a column the previous release would have to write (NOT NULL with no
//! default). This test applies the migrations one at a time on a real
//! PostgreSQL and compares the catalog before and after each, so it holds
//! however the SQL is phrased.
//!
//! A deliberate contraction (a release after the code stopped using a
//! column) is listed in `CONTRACTIONS` with the migration that makes it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeMap;

use diesel::sql_types::{Bool, Text};
use diesel_async::AsyncMigrationHarness;
use diesel_async::RunQueryDsl;
use diesel_migrations::MigrationHarness;
use galaxy_testdb::TestDb;

/// (migration version, table, column or `*` for the whole table) removed or
/// changed on purpose, each after a release that no longer used it.
const CONTRACTIONS: &[(&str, &str, &str)] = &[];

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    nullable_or_default: bool,
}

/// (table, column) → (type, may an insert leave it out).
type Catalog = BTreeMap<(String, String), (String, bool)>;

async fn catalog(conn: &mut galaxy_db::AsyncPgConnection) -> Catalog {
    let rows: Vec<Column> = diesel::sql_query(
        "SELECT c.table_name::text, c.column_name::text, \
                format_type(a.atttypid, a.atttypmod) AS data_type, \
                (c.is_nullable = 'YES' OR c.column_default IS NOT NULL \
                 OR c.is_identity = 'YES') AS nullable_or_default \
           FROM information_schema.columns c \
           JOIN pg_attribute a \
             ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass \
            AND a.attname = c.column_name \
          WHERE c.table_schema = 'backend' \
            AND c.table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .await
    .expect("read the catalog");
    rows.into_iter()
        .map(|r| {
            (
                (r.table_name, r.column_name),
                (r.data_type, r.nullable_or_default),
            )
        })
        .collect()
}

fn contracted(version: &str, table: &str, column: &str) -> bool {
    CONTRACTIONS
        .iter()
        .any(|&(v, t, c)| v == version && t == table && (c == "*" || c == column))
}

/// What `version` broke for the release before it.
fn breaks(version: &str, before: &Catalog, after: &Catalog) -> Vec<String> {
    let mut found = Vec::new();
    let tables_before: Vec<&String> = before.keys().map(|(t, _)| t).collect();
    for ((table, column), (ty, _)) in before {
        if contracted(version, table, column) {
            continue;
        }
        match after.get(&(table.clone(), column.clone())) {
            None => found.push(format!(
                "{version} drops or renames {table}.{column} (still used by the previous release)"
            )),
            Some((new_ty, _)) if new_ty != ty => found.push(format!(
                "{version} retypes {table}.{column} from {ty} to {new_ty}"
            )),
            Some(_) => {}
        }
    }
    for ((table, column), (_, optional)) in after {
        let existing_table = tables_before.contains(&table);
        let new_column = !before.contains_key(&(table.clone(), column.clone()));
        if existing_table && new_column && !optional {
            found.push(format!(
                "{version} adds {table}.{column} NOT NULL without a default: \
                 the previous release's inserts would fail"
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn every_migration_only_expands_the_schema() {
    let db = TestDb::new();
    let mut conn = galaxy_db::establish(db.url()).await.unwrap();
    for sql in ["DROP SCHEMA backend CASCADE", "CREATE SCHEMA backend"] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    let mut before = Catalog::new();
    let mut applied = Vec::new();
    let mut problems = Vec::new();
    loop {
        let mut harness = AsyncMigrationHarness::new(conn);
        let pending = harness
            .pending_migrations(galaxy_db::MIGRATIONS)
            .expect("list the pending migrations");
        if pending.is_empty() {
            break;
        }
        let version = harness
            .run_next_migration(galaxy_db::MIGRATIONS)
            .expect("apply the next migration")
            .to_string();
        conn = harness.into_inner();
        let after = catalog(&mut conn).await;
        problems.extend(breaks(&version, &before, &after));
        applied.push(version);
        before = after;
    }
    assert!(
        applied.len() >= 7,
        "every migration was applied: {applied:?}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_a_drop_a_rename_a_retype_and_a_required_column() {
    let col = |t: &str, c: &str, ty: &str, optional: bool| {
        ((t.to_owned(), c.to_owned()), (ty.to_owned(), optional))
    };
    let before: Catalog = [
        col("games", "id", "uuid", false),
        col("games", "name", "text", false),
        col("games", "seats", "integer", false),
    ]
    .into_iter()
    .collect();
    let after: Catalog = [
        col("games", "id", "uuid", false),
        col("games", "title", "text", false),
        col("games", "seats", "bigint", false),
        col("games", "owner", "uuid", false),
        col("games", "note", "text", true),
        col("turns", "id", "uuid", false),
    ]
    .into_iter()
    .collect();
    let found = breaks("00042", &before, &after);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].contains("games.name"), "{found:#?}");
    assert!(found[1].contains("retypes games.seats"), "{found:#?}");
    assert!(
        found.iter().any(|f| f.contains("games.owner")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|f| f.contains("games.title")),
        "{found:#?}"
    );
    assert!(breaks("00042", &before, &before).is_empty());
}
