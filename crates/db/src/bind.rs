//! Helpers for binding many rows at once.

/// One column of `rows`, to bind as a PostgreSQL array: a multi-row insert
/// written as `INSERT … SELECT FROM unnest($1::uuid[], …)` has the same text
/// for any row count (a multi-row VALUES insert has one text per count). Such
/// statements stay `diesel::sql_query`, planned per execution: the best plan
/// depends on the arrays' length (decision PERF-1).
pub fn column<'a, T, U>(rows: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}
