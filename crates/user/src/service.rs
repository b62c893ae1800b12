use std::sync::{Arc, RwLock};

use galaxy_core::{Page, Paged};
use galaxy_db::{DbError, Pool};
use uuid::Uuid;

use crate::cache::AccountCache;
use crate::db;
use crate::error::UserError;
use crate::events::UserEvents;
use crate::model::{Account, AccountFilter, AccountStatus};

/// The user module's public face. Reads are served from the cache (cheap,
/// synchronous: other modules call them on their request path); writes
/// commit first and then update the cache.
#[async_trait::async_trait]
pub trait UserService: Send + Sync + 'static {
    /// The account, from the cache.
    fn account(&self, id: Uuid) -> Option<Account>;
    /// The account's status and its JSON (as `GET /api/v1/user/me` returns
    /// it), serialised once per write.
    fn account_json(&self, id: Uuid) -> Option<(AccountStatus, actix_web::web::Bytes)>;
    /// `true` when the account exists and is `active` (session resolution).
    fn is_active(&self, id: Uuid) -> bool;
    /// By normalised email, from the cache.
    fn account_by_email(&self, email: &str) -> Option<Account>;
    /// Admin listing, newest first, from the cache.
    fn list(&self, filter: &AccountFilter, page: Page) -> Paged<Account>;
    /// Sets the display name (already validated).
    async fn set_display_name(&self, id: Uuid, name: &str) -> Result<Account, UserError>;
    /// Marks the account `deleted` (rows are kept), then notifies listeners.
    async fn delete(&self, id: Uuid) -> Result<(), UserError>;
    /// Blocks or unblocks; a block notifies listeners. Deleted accounts
    /// cannot change state (`UserError::Deleted`).
    async fn set_blocked(&self, id: Uuid, blocked: bool) -> Result<Account, UserError>;
    /// Write-through for an account written inside another module's
    /// transaction ([`crate::find_or_create`]); call after it committed.
    fn account_committed(&self, account: Account);
    /// Subscribes a listener (at build time, in the binary).
    fn add_listener(&self, listener: Arc<dyn UserEvents>);
}

/// [`UserService`] over PostgreSQL with a whole-table cache.
pub struct PgUserService {
    pool: Pool,
    cache: AccountCache,
    listeners: RwLock<Vec<Arc<dyn UserEvents>>>,
}

impl PgUserService {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            cache: AccountCache::default(),
            listeners: RwLock::new(Vec::new()),
        }
    }

    /// Loads the whole table (start-up; before `/readyz` turns 200).
    pub async fn warm(&self) -> Result<usize, UserError> {
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let all = db::load_all(&mut conn).await?;
        let n = all.len();
        self.cache.replace_all(all);
        tracing::info!(accounts = n, "account cache warm");
        Ok(n)
    }

    pub fn cached_accounts(&self) -> usize {
        self.cache.len()
    }

    fn listeners(&self) -> Vec<Arc<dyn UserEvents>> {
        self.listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn write_status(
        &self,
        id: Uuid,
        status: AccountStatus,
    ) -> Result<Option<Account>, UserError> {
        let current = self.cache.get(id).ok_or(UserError::NotFound)?;
        if current.status == AccountStatus::Deleted {
            return Err(UserError::Deleted);
        }
        if current.status == status {
            return Ok(None);
        }
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let account = db::set_status(&mut conn, id, status)
            .await?
            .ok_or(UserError::NotFound)?;
        self.cache.put(account.clone());
        Ok(Some(account))
    }
}

#[async_trait::async_trait]
impl UserService for PgUserService {
    fn account(&self, id: Uuid) -> Option<Account> {
        self.cache.get(id)
    }

    fn account_json(&self, id: Uuid) -> Option<(AccountStatus, actix_web::web::Bytes)> {
        self.cache.json(id)
    }

    fn is_active(&self, id: Uuid) -> bool {
        self.cache.status(id) == Some(AccountStatus::Active)
    }

    fn account_by_email(&self, email: &str) -> Option<Account> {
        self.cache.by_email(email)
    }

    fn list(&self, filter: &AccountFilter, page: Page) -> Paged<Account> {
        let all = self.cache.filtered(filter);
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        Paged::new(page.slice(&all), page, total)
    }

    #[tracing::instrument(skip(self, name))]
    async fn set_display_name(&self, id: Uuid, name: &str) -> Result<Account, UserError> {
        match self.cache.status(id) {
            None => return Err(UserError::NotFound),
            Some(AccountStatus::Deleted) => return Err(UserError::Deleted),
            Some(_) => {}
        }
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let account = db::set_display_name(&mut conn, id, name)
            .await?
            .ok_or(UserError::NotFound)?;
        self.cache.put(account.clone());
        tracing::info!(account_id = %id, "display name changed");
        Ok(account)
    }

    #[tracing::instrument(skip(self))]
    async fn delete(&self, id: Uuid) -> Result<(), UserError> {
        if self
            .write_status(id, AccountStatus::Deleted)
            .await?
            .is_none()
        {
            return Ok(());
        }
        tracing::info!(account_id = %id, "account deleted");
        for l in self.listeners() {
            l.user_deleted(id).await;
        }
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn set_blocked(&self, id: Uuid, blocked: bool) -> Result<Account, UserError> {
        let status = if blocked {
            AccountStatus::Blocked
        } else {
            AccountStatus::Active
        };
        match self.write_status(id, status).await? {
            None => self.cache.get(id).ok_or(UserError::NotFound),
            Some(account) => {
                tracing::info!(account_id = %id, status = status.as_str(), "account status changed");
                if blocked {
                    for l in self.listeners() {
                        l.user_blocked(id).await;
                    }
                }
                Ok(account)
            }
        }
    }

    fn account_committed(&self, account: Account) {
        self.cache.put(account);
    }

    fn add_listener(&self, listener: Arc<dyn UserEvents>) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }
}
