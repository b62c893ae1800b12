use galaxy_auth::AuthError;
use galaxy_core::ApiError;
use galaxy_db::DbError;
use galaxy_user::UserError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("bad credentials")]
    BadCredentials,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("rate limited; retry in {0}s")]
    RateLimited(u64),
    #[error("username taken")]
    UsernameTaken,
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// Too many password checks are running and waiting.
    #[error("too many password checks in progress")]
    Busy,
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Db(#[from] DbError),
}

galaxy_db::query_error_into_db!(AdminError);

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        use actix_web::http::StatusCode;
        match e {
            AdminError::BadCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong username or password",
            ),
            AdminError::WrongPassword => ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_password",
                "the current password is wrong",
            ),
            AdminError::RateLimited(secs) => ApiError::rate_limited(secs),
            AdminError::UsernameTaken => {
                ApiError::conflict("username_taken", "an admin with this username exists")
            }
            AdminError::Hash(e) => ApiError::internal(e),
            AdminError::Busy => {
                ApiError::unavailable("too many sign-ins in progress; retry shortly")
                    .with_retry_after(1)
            }
            AdminError::User(e) => e.into(),
            AdminError::Auth(e) => e.into(),
            AdminError::Db(e) => e.into(),
        }
    }
}
