//! PostgreSQL access for every module: its settings (`BACKEND_POSTGRES_*`),
//! the connection pool (with `search_path` and a statement timeout applied to
//! every connection) and the embedded migrations, run under an advisory lock
//! — and the one mapping of database errors to problem responses
//! (`From<DbError> for ApiError`); among several backends, the leader
//! election ([`leader`]) and the change announcements every cache follows
//! ([`announce`]).

pub mod announce;
mod bind;
mod dsn;
mod error;
pub mod leader;
mod migrate;
mod page;
pub mod page_runs;
mod pool;
mod settings;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;

pub use bind::column;
pub use diesel_async::AsyncPgConnection;
pub use dsn::{DatabaseUrl, DsnError};
pub use error::{RETRY_AFTER_SECS, api_error, is_transient, lost_connection};
pub use migrate::{MIGRATIONS, MigrateError, migrate};
pub use pool::{DbError, Pool, PoolSettings, PooledConn, PostgresCheck, build_pool, establish};
pub use settings::{Settings, VARIABLES};
pub use sql::{Bound, Sql, sql};
