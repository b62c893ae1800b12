//! Raw SQL that each connection prepares once.
//!
//! `diesel::sql_query` marks every statement unsafe to cache, so each
//! execution prepares it anew: a Parse/Describe round trip and a fresh plan
//! before the Bind/Execute one, then a Close. [`sql`] takes the same text and
//! binds but lets the connection's statement cache keep the prepared
//! statement, keyed by its text and bind types: one round trip per
//! execution, planned once.
//!
//! Only for text drawn from a fixed set (a constant, or one of a few
//! variants) that binds scalars: every distinct text stays in the cache for
//! the connection's life, and after five executions PostgreSQL may plan a
//! cached statement once for any values. Text carrying values (a `LISTEN`
//! channel, a generated predicate) and statements binding arrays (whose best
//! plan depends on their length) keep using `diesel::sql_query`.

use std::borrow::Cow;
use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// Raw SQL whose prepared statement the connection caches; add parameters
/// with [`Sql::bind`] (`$1`, `$2`, … in order), run it with diesel-async's
/// `execute`, `get_result` or `load` into a `QueryableByName` type.
pub fn sql(text: impl Into<Cow<'static, str>>) -> Sql {
    Sql(text.into())
}

/// See [`sql`].
#[derive(Debug, Clone)]
#[must_use = "a query runs only when executed or loaded"]
pub struct Sql(Cow<'static, str>);

/// [`Sql`] with one more parameter bound.
#[derive(Debug, Clone)]
#[must_use = "a query runs only when executed or loaded"]
pub struct Bound<Q, V, ST> {
    query: Q,
    value: V,
    sql_type: PhantomData<ST>,
}

impl Sql {
    pub fn bind<ST, V>(self, value: V) -> Bound<Self, V, ST> {
        Bound {
            query: self,
            value,
            sql_type: PhantomData,
        }
    }
}

impl<Q, V, ST> Bound<Q, V, ST> {
    pub fn bind<ST2, V2>(self, value: V2) -> Bound<Self, V2, ST2> {
        Bound {
            query: self,
            value,
            sql_type: PhantomData,
        }
    }
}

// No static query id: diesel then caches the statement by its text.
impl QueryId for Sql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, V, ST> QueryId for Bound<Q, V, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Sql {
    type SqlType = Untyped;
}

impl<Q, V, ST> Query for Bound<Q, V, ST> {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for Sql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(&self.0);
        Ok(())
    }
}

impl<Q, V, ST> QueryFragment<Pg> for Bound<Q, V, ST>
where
    Q: QueryFragment<Pg>,
    V: ToSql<ST, Pg>,
    Pg: HasSqlType<ST>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        // The text already holds the `$n` placeholders.
        out.push_bind_param_value_only(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use diesel::query_builder::QueryFragment;
    use diesel::sql_types::{BigInt, Text};

    use super::sql;

    #[test]
    fn the_text_is_kept_and_the_statement_is_cacheable() {
        let q = sql("SELECT $1::bigint AS n, $2 AS s")
            .bind::<BigInt, _>(7_i64)
            .bind::<Text, _>("x");
        assert_eq!(
            diesel::debug_query::<diesel::pg::Pg, _>(&q).to_string(),
            "SELECT $1::bigint AS n, $2 AS s -- binds: [7, \"x\"]"
        );
        assert!(q.is_safe_to_cache_prepared(&diesel::pg::Pg).unwrap());
        let plain = diesel::sql_query("SELECT 1");
        assert!(!plain.is_safe_to_cache_prepared(&diesel::pg::Pg).unwrap());
    }
}
