use galaxy_core::ApiError;

/// Everything submit, the inbox and the admin surface can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("unknown notification kind {kind:?}")]
    UnknownKind { kind: String },
    #[error("{kind}: payload field {field:?} {problem}")]
    InvalidPayload {
        kind: &'static str,
        field: String,
        problem: String,
    },
    #[error("{kind}: at least one recipient is required")]
    NoRecipients { kind: &'static str },
    #[error("{kind}: at most {max} recipients")]
    TooManyRecipients { kind: &'static str, max: usize },
    #[error("{kind} is an admin-channel kind: recipients must be empty")]
    RecipientsNotAllowed { kind: &'static str },
    #[error("idempotency key {reason}")]
    InvalidIdempotencyKey { reason: String },
    #[error("a recipient is not an existing account")]
    UnknownRecipient,
    #[error("no such notification")]
    NotFound,
    #[error("only dead-lettered routes can be retried (this one is {status})")]
    NotRetryable { status: String },
    #[error(transparent)]
    Db(#[from] galaxy_db::DbError),
}

impl From<diesel::result::Error> for NotificationError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info)
                if info
                    .constraint_name()
                    .is_some_and(|c| c.contains("account_id")) =>
            {
                Self::UnknownRecipient
            }
            _ => Self::Db(e.into()),
        }
    }
}

impl From<NotificationError> for ApiError {
    fn from(e: NotificationError) -> Self {
        match &e {
            NotificationError::NotFound => ApiError::not_found(e.to_string()),
            NotificationError::NotRetryable { .. } => {
                ApiError::conflict("route_not_dead_lettered", e.to_string())
            }
            NotificationError::Db(galaxy_db::DbError::Pool(_)) => {
                ApiError::unavailable("the database is unavailable")
            }
            NotificationError::Db(inner) => ApiError::internal(inner),
            NotificationError::InvalidPayload { field, problem, .. } => {
                ApiError::invalid_field(&format!("payload.{field}"), problem.clone())
            }
            NotificationError::InvalidIdempotencyKey { reason } => {
                ApiError::invalid_field("idempotency_key", reason.clone())
            }
            NotificationError::UnknownKind { .. } => ApiError::invalid_field("kind", e.to_string()),
            NotificationError::NoRecipients { .. }
            | NotificationError::TooManyRecipients { .. }
            | NotificationError::RecipientsNotAllowed { .. }
            | NotificationError::UnknownRecipient => {
                ApiError::invalid_field("recipients", e.to_string())
            }
        }
    }
}
