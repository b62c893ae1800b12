//! The account cache follows its peers' changes (SYSTEM.md §12): a sign-up,
//! rename, block, unblock or delete on any backend is announced on
//! [`db::CHANNEL`] and the account is read again here.

use galaxy_db::announce::Coherent;
use uuid::Uuid;

use crate::db;
use crate::service::PgUserService;

#[async_trait::async_trait]
impl Coherent for PgUserService {
    fn channel(&self) -> &'static str {
        db::CHANNEL
    }

    async fn reload(&self, ids: &[Uuid]) -> Result<(), String> {
        // Accounts are never removed (`deleted` is a status), so every id
        // announced is read back and replaces what the cache holds.
        let reloaded = self.reload_accounts(ids).await;
        reloaded.map_err(|e| e.to_string())
    }

    async fn reload_all(&self) -> Result<(), String> {
        let warmed = self.warm().await;
        warmed.map(drop).map_err(|e| e.to_string())
    }
}
