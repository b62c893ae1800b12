//! Helpers for binding many rows at once.

/// One column of `rows`, to bind as a PostgreSQL array: a multi-row insert
/// written as `INSERT … SELECT FROM unnest($1::uuid[], …)` has the same text
/// for any row count, so it is prepared once per connection (diesel does not
/// cache a multi-row VALUES insert).
pub fn column<'a, T, U>(rows: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}
