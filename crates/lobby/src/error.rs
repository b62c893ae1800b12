use galaxy_core::ApiError;
use galaxy_db::DbError;

use crate::model::UnknownWord;
use crate::ports::{GameCallError, StartError};

/// Everything a lobby operation can fail with; mapped to problem+json by
/// `From<LobbyError> for ApiError`.
#[derive(Debug, thiserror::Error)]
pub enum LobbyError {
    /// Field validation failed (already a `validation_failed` problem).
    #[error("{0}")]
    Invalid(ApiError),
    #[error("no such game")]
    NotFound,
    /// 403 with a specific code (`forbidden`, `not_owner`, `not_member`, `account_inactive`).
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// 409 with a specific code (`game_full`, `game_not_open`, …).
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The requested engine version is unknown or not active (400).
    #[error("engine version `{0}` is unknown or not active")]
    EngineVersionUnavailable(String),
    #[error(transparent)]
    Engine(#[from] GameCallError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The notification written with a change failed (its database, or an
    /// intent the catalog refuses — a bug); the change was rolled back.
    #[error("notification: {0}")]
    Notify(ApiError),
    /// A row the CHECK constraints should have prevented.
    #[error("corrupt lobby row: {0}")]
    Corrupt(#[from] UnknownWord),
}

impl LobbyError {
    pub(crate) fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    /// The problem `code` this error answers with.
    pub fn code(&self) -> &str {
        match self {
            Self::Invalid(e) | Self::Notify(e) => e.code(),
            Self::NotFound | Self::Engine(GameCallError::NotFound(_)) => "not_found",
            Self::Forbidden { code, .. } | Self::Conflict { code, .. } => code,
            Self::EngineVersionUnavailable(_) => "engine_version_unavailable",
            Self::Start(StartError::Refused(_)) => "start_refused",
            Self::Engine(GameCallError::Rejected(_)) => "rejected_by_engine",
            Self::Engine(GameCallError::Unavailable(_))
            | Self::Start(StartError::Unavailable(_)) => "unavailable",
            Self::Db(e) if e.is_transient() => "unavailable",
            Self::Db(_) | Self::Corrupt(_) => "internal",
        }
    }
}

galaxy_db::query_error_into_db!(LobbyError);

impl From<LobbyError> for ApiError {
    fn from(e: LobbyError) -> Self {
        match e {
            LobbyError::Invalid(api) | LobbyError::Notify(api) => api,
            LobbyError::NotFound => ApiError::not_found("no such game"),
            LobbyError::Forbidden { code, detail } => {
                ApiError::new(actix_web::http::StatusCode::FORBIDDEN, code, detail)
            }
            LobbyError::Conflict { code, detail } => ApiError::conflict(code, detail),
            e @ LobbyError::EngineVersionUnavailable(_) => {
                // The request is well formed; whether the version may be
                // used depends on the registry's state (HARD-20).
                ApiError::conflict("engine_version_unavailable", e.to_string())
            }
            LobbyError::Engine(GameCallError::Rejected(reason)) => {
                ApiError::bad_request("rejected_by_engine", reason)
            }
            LobbyError::Engine(GameCallError::NotFound(reason)) => ApiError::not_found(reason),
            LobbyError::Engine(GameCallError::Unavailable(reason)) => {
                tracing::warn!(reason = %reason, "game engine unavailable");
                ApiError::unavailable("the game engine is not reachable right now; retry later")
            }
            LobbyError::Start(StartError::Unavailable(e)) => {
                tracing::warn!(error = %e, "runtime could not take a start");
                ApiError::unavailable("the game runtime is unavailable; retry later")
            }
            LobbyError::Start(StartError::Refused(reason)) => ApiError::conflict(
                "start_refused",
                format!("the game cannot be started: {reason}"),
            ),
            LobbyError::Db(e) => e.into(),
            e @ LobbyError::Corrupt(_) => ApiError::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use diesel::result::{DatabaseErrorKind, Error};

    use super::*;

    #[test]
    fn a_connection_lost_mid_query_is_unavailable_not_internal() {
        let lost = || {
            LobbyError::from(Error::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand,
                Box::new("connection closed".to_owned()),
            ))
        };
        assert_eq!(lost().code(), "unavailable");
        let e = ApiError::from(lost());
        assert_eq!((e.status_code().as_u16(), e.code()), (503, "unavailable"));
    }
}
