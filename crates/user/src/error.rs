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

galaxy_db::query_error_into_db!(UserError);

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound => ApiError::not_found("no such account"),
            UserError::Deleted => ApiError::conflict("account_deleted", "the account is deleted"),
            UserError::Db(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    #[test]
    fn a_connection_lost_mid_query_is_unavailable_not_internal() {
        let e = ApiError::from(UserError::from(galaxy_db::lost_connection()));
        assert_eq!((e.status_code().as_u16(), e.code()), (503, "unavailable"));
    }
}
