//! Property: whatever the shared validators accept can be stored — JSON in
//! a PostgreSQL `jsonb`, names in `text` — and no input makes them panic.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::LazyLock;

use diesel::sql_types::{Jsonb, Text};
use diesel_async::RunQueryDsl;
use galaxy_core::{json_problem, name_problem};
use galaxy_testdb::TestDb;
use proptest::prelude::*;
use serde_json::Value;

struct Db {
    rt: tokio::runtime::Runtime,
    db: TestDb,
}

static DB: LazyLock<Db> = LazyLock::new(|| Db {
    rt: tokio::runtime::Runtime::new().unwrap(),
    db: TestDb::new(),
});

#[derive(diesel::QueryableByName)]
struct Back {
    #[diesel(sql_type = Jsonb)]
    v: Value,
}

fn store_json(v: &Value) -> Result<Value, String> {
    DB.rt.block_on(async {
        let mut conn = DB.db.pool().get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT $1::jsonb AS v")
            .bind::<Jsonb, _>(v)
            .get_result::<Back>(&mut conn)
            .await
            .map(|b| b.v)
            .map_err(|e| e.to_string())
    })
}

fn store_text(s: &str) -> Result<(), String> {
    DB.rt.block_on(async {
        let mut conn = DB.db.pool().get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT length($1::text)")
            .bind::<Text, _>(s)
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a\u{0}\u{1}é]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner.clone(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            prop::collection::btree_map("[k\u{0}]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Accepted JSON round-trips through `jsonb`; refused JSON would not
    /// have been storable.
    #[test]
    fn accepted_json_is_storable_as_jsonb(v in arb_json()) {
        let stored = store_json(&v);
        match json_problem(&v) {
            None => prop_assert!(stored.is_ok(), "accepted but not storable: {stored:?}"),
            Some(_) => prop_assert!(stored.is_err(), "refused although storable"),
        }
    }

    /// Accepted names are storable as `text`.
    #[test]
    fn accepted_names_are_storable_as_text(s in any::<String>()) {
        if name_problem(&s, 64).is_none() {
            prop_assert!(store_text(&s).is_ok());
        }
    }
}
