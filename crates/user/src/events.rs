use chrono::{DateTime, Utc};
use galaxy_core::ApiError;
use uuid::Uuid;

/// Reactions to account lifecycle changes. Implemented by the modules that
/// must react (auth revokes sessions, notification skips pending routes,
/// lobby leaves open games) and registered on the user service by the
/// binary, so the user module never depends on them.
///
/// Every change is recorded with the change itself (decision HARD-15) and
/// listeners run after it committed and the cache was updated, in
/// registration order (auth first, so the others see the user's sessions
/// already revoked). A change whose listeners did not all succeed — an
/// error, or the process died — is run again later, by any backend, until
/// they do: **listeners must be idempotent**, so each reaction takes
/// effect exactly once.
#[async_trait::async_trait]
pub trait UserEvents: Send + Sync + 'static {
    /// After the deletion committed. Listeners skip the user's pending
    /// notification routes, leave open games, …
    async fn user_deleted(&self, account_id: Uuid) -> Result<(), ApiError>;
    /// After a block committed at `blocked_at`: what existed then is the
    /// block's (auth revokes the sessions created up to that moment, not
    /// those of a later sign-in after an unblock).
    async fn user_blocked(
        &self,
        _account_id: Uuid,
        _blocked_at: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        // A listener with nothing to undo on a block (lobby, notification).
        Ok(())
    }
}
