use galaxy_core::ApiError;
use galaxy_db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no such account")]
    NotFound,
    #[error("the account is deleted")]
    Deleted,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UserError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound => ApiError::not_found("no such account"),
            UserError::Deleted => ApiError::conflict("account_deleted", "the account is deleted"),
            UserError::Db(DbError::Pool(e)) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry later")
            }
            UserError::Db(e) => ApiError::internal(e),
        }
    }
}
