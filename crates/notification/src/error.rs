use galaxy_core::ApiError;
use uuid::Uuid;

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
    #[error(
        "an email route follows its mail; resend the mail instead \
         (POST /api/v1/admin/mail/deliveries/{delivery_id}/resend)"
    )]
    FollowsMail { delivery_id: Uuid },
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
        let detail = e.to_string();
        match e {
            NotificationError::NotFound => ApiError::not_found(detail),
            NotificationError::NotRetryable { .. } => {
                ApiError::conflict("route_not_dead_lettered", detail)
            }
            NotificationError::FollowsMail { .. } => {
                ApiError::conflict("route_follows_mail", detail)
            }
            NotificationError::Db(inner) => inner.into(),
            NotificationError::InvalidPayload { field, problem, .. } => {
                ApiError::invalid_field(&format!("payload.{field}"), problem)
            }
            NotificationError::InvalidIdempotencyKey { reason } => {
                ApiError::invalid_field("idempotency_key", reason)
            }
            NotificationError::UnknownKind { .. } => ApiError::invalid_field("kind", detail),
            NotificationError::NoRecipients { .. }
            | NotificationError::TooManyRecipients { .. }
            | NotificationError::RecipientsNotAllowed { .. }
            | NotificationError::UnknownRecipient => ApiError::invalid_field("recipients", detail),
        }
    }
}
