use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use diesel_async::AsyncConnection;
use galaxy_core::{Page, Paged};
use galaxy_db::{DbError, Pool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cache::AccountCache;
use crate::db;
use crate::error::UserError;
use crate::events::UserEvents;
use crate::model::{Account, AccountFilter, AccountStatus};
use crate::reactions;
use crate::warm;

/// How often the reactions worker looks for changes a crash or a failure left.
const REACTOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The user module's public face. Reads are served from the cache (cheap,
/// synchronous: other modules call them on their request path); writes
/// commit first and then update the cache.
#[async_trait::async_trait]
pub trait UserService: Send + Sync + 'static {
    /// The account, from the cache.
    fn account(&self, id: Uuid) -> Option<Account>;
    /// The account's status and its JSON (as `GET /api/v1/user/me` returns
    /// it), serialised at most once per write (on its first read after it).
    fn account_json(&self, id: Uuid) -> Option<(AccountStatus, bytes::Bytes)>;
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
    /// One writer per account at a time, so the cache sees one account's
    /// writes in the order they committed.
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

/// An account's write lock; its map entry goes when the last holder drops it.
struct AccountLock<'a> {
    locks: &'a Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    id: Uuid,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for AccountLock<'_> {
    fn drop(&mut self) {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mutex = self
            .guard
            .take()
            .map(|g| Arc::clone(tokio::sync::OwnedMutexGuard::mutex(&g)));
        // The map's Arc and ours: nobody else waits for this account.
        if mutex.is_some_and(|m| Arc::strong_count(&m) == 2) {
            locks.remove(&self.id);
        }
    }
}

impl PgUserService {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            cache: AccountCache::default(),
            listeners: RwLock::new(Vec::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    async fn lock(&self, id: Uuid) -> AccountLock<'_> {
        let mutex = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(locks.entry(id).or_default())
        };
        AccountLock {
            locks: &self.locks,
            id,
            guard: Some(mutex.lock_owned().await),
        }
    }

    /// A write matched no row that is not deleted: the account was deleted
    /// (by another process, or in a race this cache had not seen yet).
    async fn refresh_missing(
        &self,
        conn: &mut galaxy_db::AsyncPgConnection,
        id: Uuid,
    ) -> Result<UserError, UserError> {
        Ok(match db::load(conn, id).await? {
            Some(account) => {
                self.cache.put(account);
                UserError::Deleted
            }
            None => UserError::NotFound,
        })
    }

    /// Loads the whole table (start-up; before `/readyz` turns 200).
    pub async fn warm(&self) -> Result<usize, UserError> {
        let accounts = warm::load(&self.pool).await?;
        let n = accounts.len();
        self.cache.install(accounts);
        tracing::info!(accounts = n, "account cache warm");
        Ok(n)
    }

    /// Reads these accounts again and applies them to the cache (a peer
    /// wrote them).
    pub(crate) async fn reload_accounts(&self, ids: &[Uuid]) -> Result<(), UserError> {
        // Read under the accounts' locks (every write here holds one until
        // its cache write), so nothing older than this backend's own last
        // write of an account is put back.
        let mut held = Vec::with_capacity(ids.len());
        for id in ids {
            held.push(self.lock(*id).await);
        }
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        for account in db::load_many(&mut conn, ids).await? {
            self.cache.put(account);
        }
        drop(held);
        Ok(())
    }

    pub fn cached_accounts(&self) -> usize {
        self.cache.len()
    }

    fn listeners(&self) -> Vec<Arc<dyn UserEvents>> {
        self.listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes the status and, in the same transaction, the record of the
    /// reactions it owes (blocked, deleted). `None` when nothing changed.
    async fn write_status(
        &self,
        id: Uuid,
        status: AccountStatus,
    ) -> Result<Option<(Account, Option<Uuid>)>, UserError> {
        let _lock = self.lock(id).await;
        let current = self.cache.get(id).ok_or(UserError::NotFound)?;
        if current.status == AccountStatus::Deleted {
            return Err(UserError::Deleted);
        }
        if current.status == status {
            return Ok(None);
        }
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let changed_at = Utc::now();
        let written = conn
            .transaction(async |c| {
                let Some(account) = db::set_status(c, id, status).await? else {
                    return Ok::<_, UserError>(None);
                };
                let reaction = if reactions::reacts(status) {
                    Some(reactions::record(c, id, status, changed_at).await?)
                } else {
                    None
                };
                Ok(Some((account, reaction)))
            })
            .await?;
        let Some((account, reaction)) = written else {
            return Err(self.refresh_missing(&mut conn, id).await?);
        };
        self.cache.put(account.clone());
        Ok(Some((account, reaction)))
    }

    /// Runs the listeners for a change just committed, under its record's
    /// lock (waiting for a worker that took it first). A failure is logged:
    /// the change stands, and the worker tries again.
    async fn react(&self, reaction: Uuid) {
        let listeners = self.listeners();
        let result = async {
            let mut conn = self.pool.get().await.map_err(DbError::from)?;
            conn.transaction(async |c| match reactions::lock(c, reaction).await? {
                Some(p) => reactions::complete(c, &listeners, &p).await,
                None => Ok(true),
            })
            .await
            .map_err(UserError::from)
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%reaction, error = %e, "account reactions not recorded; the worker retries");
        }
    }

    /// One pass over the due records (a crashed process's, failed ones);
    /// returns how many were completed.
    pub async fn react_due(&self) -> Result<usize, UserError> {
        let listeners = self.listeners();
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let mut done = 0;
        loop {
            let step = conn
                .transaction(async |c| match reactions::claim_due(c).await? {
                    Some(p) => {
                        tracing::info!(account_id = %p.account_id, status = %p.status,
                            attempts = p.attempts, "completing account reactions");
                        reactions::complete(c, &listeners, &p).await.map(Some)
                    }
                    None => Ok::<_, diesel::result::Error>(None),
                })
                .await?;
            match step {
                Some(true) => done += 1,
                // Failed: kept with a later `next_attempt_at`; go on.
                Some(false) => {}
                None => return Ok(done),
            }
        }
    }

    /// The worker that completes what a crash or a failure left (decision
    /// HARD-15); its first pass runs at once (after `warm`).
    pub fn spawn_reactor(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REACTOR_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match this.react_due().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(changes = n, "account reactions completed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "account reactions pass failed; will retry");
                    }
                }
            }
        })
    }
}

#[async_trait::async_trait]
impl UserService for PgUserService {
    fn account(&self, id: Uuid) -> Option<Account> {
        self.cache.get(id)
    }

    fn account_json(&self, id: Uuid) -> Option<(AccountStatus, bytes::Bytes)> {
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
        let _lock = self.lock(id).await;
        match self.cache.status(id) {
            None => return Err(UserError::NotFound),
            Some(AccountStatus::Deleted) => return Err(UserError::Deleted),
            Some(_) => {}
        }
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let written = conn
            .transaction(async |c| db::set_display_name(c, id, name).await)
            .await?;
        let Some(account) = written else {
            return Err(self.refresh_missing(&mut conn, id).await?);
        };
        self.cache.put(account.clone());
        tracing::info!(account_id = %id, "display name changed");
        Ok(account)
    }

    #[tracing::instrument(skip(self))]
    async fn delete(&self, id: Uuid) -> Result<(), UserError> {
        let Some((_, reaction)) = self.write_status(id, AccountStatus::Deleted).await? else {
            return Ok(());
        };
        tracing::info!(account_id = %id, "account deleted");
        galaxy_core::failpoint::hit("user.deleted");
        if let Some(reaction) = reaction {
            self.react(reaction).await;
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
            Some((account, reaction)) => {
                tracing::info!(account_id = %id, status = status.as_str(), "account status changed");
                if blocked {
                    galaxy_core::failpoint::hit("user.blocked");
                }
                if let Some(reaction) = reaction {
                    self.react(reaction).await;
                }
                Ok(account)
            }
        }
    }

    fn account_committed(&self, account: Account) {
        // An account this cache already holds is current here (every write
        // goes through it); a sign-in's read of it may be older.
        self.cache.put_if_absent(account);
    }

    fn add_listener(&self, listener: Arc<dyn UserEvents>) {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }
}
