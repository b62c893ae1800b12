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
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AdminError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

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
            AdminError::User(e) => e.into(),
            AdminError::Auth(e) => e.into(),
            AdminError::Db(DbError::Pool(e)) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry later")
            }
            AdminError::Db(e) => ApiError::internal(e),
        }
    }
}
