use uuid::Uuid;

/// Reactions to account lifecycle changes. Implemented by the modules that
/// must react (auth revokes sessions, notification skips pending routes,
/// lobby leaves open games) and registered on the user service by the
/// binary, so the user module never depends on them.
///
/// Listeners run in registration order after the change committed and the
/// cache was updated; auth is registered first, so the others see the
/// user's sessions already revoked.
#[async_trait::async_trait]
pub trait UserEvents: Send + Sync + 'static {
    /// After the deletion committed. Listeners skip the user's pending
    /// notification routes, leave open games, …
    async fn user_deleted(&self, account_id: Uuid);
    /// After a block committed (sessions are already revoked by auth).
    async fn user_blocked(&self, account_id: Uuid) {
        let _ = account_id;
    }
}
