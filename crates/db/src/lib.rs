//! PostgreSQL access for every module: the connection pool (with
//! `search_path` and a statement timeout applied to every connection) and the
//! embedded migrations, run under an advisory lock.

mod bind;
mod dsn;
mod migrate;
mod pool;

pub use bind::column;
pub use diesel_async::AsyncPgConnection;
pub use dsn::{DatabaseUrl, DsnError};
pub use migrate::{MIGRATIONS, MigrateError, migrate};
pub use pool::{DbError, Pool, PoolSettings, PooledConn, PostgresCheck, build_pool, establish};
