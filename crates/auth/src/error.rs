use galaxy_core::ApiError;
use galaxy_db::DbError;
use galaxy_user::AccountStatus;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("rate limited; retry in {0}s")]
    RateLimited(u64),
    #[error("wrong code")]
    InvalidCode,
    #[error("the challenge is unknown, expired, used or dead")]
    ChallengeInvalid,
    #[error("the account is {}", .0.as_str())]
    AccountUnavailable(AccountStatus),
    #[error("no such session")]
    SessionNotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

galaxy_db::query_error_into_db!(AuthError);

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use actix_web::http::StatusCode;
        match e {
            AuthError::RateLimited(secs) => ApiError::rate_limited(secs),
            AuthError::InvalidCode => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                "the code is wrong",
            ),
            AuthError::ChallengeInvalid => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "challenge_invalid",
                "the challenge is unknown, expired, already used or has seen too many wrong codes; request a new code",
            ),
            AuthError::AccountUnavailable(status) => ApiError::new(
                StatusCode::FORBIDDEN,
                format!("account_{}", status.as_str()),
                format!("the account is {}", status.as_str()),
            ),
            AuthError::SessionNotFound => ApiError::not_found("no such session"),
            AuthError::Db(e) => e.into(),
        }
    }
}
