//! The one mapping from database errors to problem responses (SYSTEM.md §5:
//! a connection lost mid-request is `unavailable`, never `internal`).
//!
//! Every module's error type keeps its own kinds (including the constraint
//! violations it turns into 409s or 400s) and hands the rest of its
//! database arm to `From<DbError> for ApiError`.

use diesel::result::{DatabaseErrorKind, Error};
use galaxy_core::ApiError;

use crate::pool::DbError;

/// `Retry-After` on a transient database failure: PostgreSQL restarts and
/// pool exhaustion clear in seconds.
pub const RETRY_AFTER_SECS: u64 = 2;

/// Server messages of transient failures that diesel reports as
/// `DatabaseErrorKind::Unknown` (it keeps no SQLSTATE): 57014 statement or
/// lock timeout, 57P01–57P03 administrator shutdown, crash, starting up or
/// shutting down, 40P01 deadlock, 25P03 idle-in-transaction timeout,
/// 53300 too many connections, 55P03 lock not available.
const TRANSIENT_MESSAGES: &[&str] = &[
    "canceling statement due to",
    "terminating connection",
    "the database system is",
    "deadlock detected",
    "could not serialize access",
    "could not obtain lock",
    "too many clients",
    "remaining connection slots are reserved",
    "server closed the connection",
    "connection closed",
    "broken pipe",
    "connection reset",
];

impl DbError {
    /// Whether the same request can succeed later: the pool had no
    /// connection, the connection was lost or refused, the statement timed
    /// out, or the transaction lost a serialization race or a deadlock.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Connect(_) => true,
            Self::Query(e) => is_transient(e),
        }
    }
}

/// [`DbError::is_transient`] for a bare diesel error.
pub fn is_transient(e: &Error) -> bool {
    match e {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure,
            _,
        ) => true,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message().to_ascii_lowercase();
            TRANSIENT_MESSAGES.iter().any(|m| message.contains(m))
        }
        // A transaction whose connection died cannot be rolled back either.
        Error::BrokenTransactionManager => true,
        Error::RollbackErrorOnCommit { commit_error, .. } => is_transient(commit_error),
        _ => false,
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::unavailable("the database is unavailable; retry later")
                .with_retry_after(RETRY_AFTER_SECS)
        } else {
            ApiError::internal(e)
        }
    }
}

/// A diesel error as a problem (modules that keep bare `QueryResult`s).
pub fn api_error(e: Error) -> ApiError {
    DbError::Query(e).into()
}

/// Implements `From<diesel::result::Error>` for a module's error type that
/// has a `Db(DbError)` variant, so `?` on a bare query result lands in its
/// database arm (and from there in `From<DbError> for ApiError`).
#[macro_export]
macro_rules! query_error_into_db {
    ($error:ty) => {
        impl From<::diesel::result::Error> for $error {
            fn from(e: ::diesel::result::Error) -> Self {
                Self::Db($crate::DbError::Query(e))
            }
        }
    };
}

/// A connection lost mid-query, as diesel reports it: for the modules'
/// tests that their error type maps it to `unavailable`.
pub fn lost_connection() -> Error {
    Error::DatabaseError(
        DatabaseErrorKind::UnableToSendCommand,
        Box::new("connection closed".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    fn status(e: DbError) -> (u16, String) {
        let api = ApiError::from(e);
        (api.status_code().as_u16(), api.code().to_owned())
    }

    fn db(kind: DatabaseErrorKind, message: &str) -> DbError {
        DbError::Query(Error::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn transient_failures_are_503_everything_else_500() {
        let unavailable = (503, "unavailable".to_owned());
        let internal = (500, "internal".to_owned());
        for e in [
            db(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            db(DatabaseErrorKind::ClosedConnection, "closed"),
            db(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            db(DatabaseErrorKind::Unknown, "deadlock detected"),
            DbError::Query(Error::BrokenTransactionManager),
            DbError::Connect(diesel::ConnectionError::BadConnection("refused".into())),
        ] {
            assert_eq!(status(e), unavailable);
        }
        for e in [
            db(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            db(DatabaseErrorKind::Unknown, "syntax error at or near"),
            DbError::Query(Error::NotFound),
        ] {
            assert_eq!(status(e), internal);
        }
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let resp = ApiError::from(db(DatabaseErrorKind::UnableToSendCommand, "x")).error_response();
        assert_eq!(
            resp.headers().get("retry-after").unwrap(),
            &RETRY_AFTER_SECS.to_string()
        );
    }
}
