use actix_web::http::StatusCode;
use galaxy_core::ApiError;

/// Errors of the runtime service; mapped to problem responses at the HTTP
/// edge (and to the lobby's errors by the binary's adapter).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no runtime record for game {0}")]
    NoRecord(uuid::Uuid),
    #[error("unknown engine version {0:?}")]
    UnknownVersion(String),
    #[error("engine version {0:?} already exists")]
    VersionExists(String),
    #[error("engine version {0:?} is disabled")]
    VersionDisabled(String),
    #[error("the game's engine is already running")]
    AlreadyRunning,
    #[error("the game's engine is not running")]
    NotRunning,
    #[error("another operation on this game is in progress")]
    Busy,
    #[error("invalid input: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The engine refused the request (HTTP 400); the engine's reason.
    #[error("{0}")]
    EngineRejected(String),
    /// The engine answered 404 (unknown race, future turn).
    #[error("{0}")]
    EngineNotFound(String),
    /// The engine did not answer or answered something unexpected.
    #[error("engine unavailable: {0}")]
    EngineUnavailable(String),
    /// The container driver (Docker) failed; its own words.
    #[error("container driver: {0}")]
    Driver(String),
    #[error(transparent)]
    Db(#[from] galaxy_db::DbError),
    /// A reaction written in the runtime's transaction failed (see
    /// `RuntimeEvents::turn_generated`); the transaction was rolled back.
    #[error("reaction: {0}")]
    Reaction(ApiError),
}

galaxy_db::query_error_into_db!(RuntimeError);

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NoRecord(_) => ApiError::not_found(e.to_string()),
            RuntimeError::UnknownVersion(_) => ApiError::not_found(e.to_string()),
            RuntimeError::VersionExists(_) => {
                ApiError::conflict("engine_version_exists", e.to_string())
            }
            RuntimeError::VersionDisabled(_) => {
                ApiError::conflict("engine_version_disabled", e.to_string())
            }
            RuntimeError::AlreadyRunning => ApiError::conflict("engine_running", e.to_string()),
            RuntimeError::NotRunning => ApiError::conflict("engine_not_running", e.to_string()),
            RuntimeError::Busy => ApiError::conflict("operation_in_progress", e.to_string()),
            RuntimeError::Invalid { field, message } => ApiError::invalid_field(field, message),
            RuntimeError::EngineRejected(reason) => {
                ApiError::bad_request("engine_rejected", reason)
            }
            RuntimeError::EngineNotFound(reason) => ApiError::not_found(reason),
            RuntimeError::EngineUnavailable(_) | RuntimeError::Driver(_) => {
                tracing::warn!(error = %e, "runtime dependency unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the game engine cannot be reached right now",
                )
            }
            RuntimeError::Db(e) => e.into(),
            RuntimeError::Reaction(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use diesel::result::{DatabaseErrorKind, Error};

    use super::*;

    #[test]
    fn pool_and_lost_connection_errors_are_unavailable() {
        let cannot_connect =
            galaxy_db::DbError::Connect(diesel::ConnectionError::BadConnection("refused".into()));
        let lost = Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("connection closed".to_owned()),
        );
        for e in [RuntimeError::Db(cannot_connect), RuntimeError::from(lost)] {
            let api = ApiError::from(e);
            assert_eq!(
                (api.status_code().as_u16(), api.code()),
                (503, "unavailable")
            );
        }
    }
}
