use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use galaxy_auth::{AuthService, SessionView};
use galaxy_core::env::RateLimit;
use galaxy_core::{AdminPrincipal, AdminSessionResolver, Page, Paged};
use galaxy_db::{DbError, Pool};
use galaxy_geo::CountryCounter;
use galaxy_user::{Account, AccountFilter, UserError, UserService};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::cache::{AdminCache, CachedSession};
use crate::db::{self, AdminRow, SessionRow};
use crate::error::AdminError;
use crate::limiter::{self, HashGate, LoginLimits};
use crate::password;

/// Admin tokens start with this (user tokens with `gu_`); they live in
/// another table and resolve through another resolver.
pub const ADMIN_TOKEN_PREFIX: &str = "ga_";

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub session_ttl: Duration,
    /// Failed logins per source IP per window; per username it is half.
    pub login_limit: RateLimit,
    /// argon2 hashes running at once (`BACKEND_ADMIN_HASH_CONCURRENCY`);
    /// up to four times as many wait, the others answer 503.
    pub hash_concurrency: usize,
}

/// An administrator as the API shows it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminView {
    pub id: Uuid,
    pub username: String,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<&AdminRow> for AdminView {
    fn from(a: &AdminRow) -> Self {
        Self {
            id: a.id,
            username: a.username.clone(),
            created_at: a.created_at,
            password_changed_at: a.password_changed_at,
            disabled_at: a.disabled_at,
        }
    }
}

/// The admin module's public face.
#[async_trait::async_trait]
pub trait AdminService: Send + Sync + 'static {
    /// `(token, expires_at)`; failures are limited per IP and per username.
    async fn login(
        &self,
        username: &str,
        password: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<(String, DateTime<Utc>), AdminError>;
    async fn logout(&self, who: &AdminPrincipal) -> Result<(), AdminError>;
    /// Checks the current password, stores the new one (validated by the
    /// caller) and revokes the admin's other sessions.
    async fn change_password(
        &self,
        who: &AdminPrincipal,
        current: &str,
        new: &str,
    ) -> Result<(), AdminError>;
    fn list_admins(&self, page: Page) -> Paged<AdminView>;
    async fn create_admin(&self, username: &str, password: &str) -> Result<AdminView, AdminError>;
    fn list_users(&self, filter: &AccountFilter, page: Page) -> Paged<Account>;
    /// The account, its country counters (from the database) and its live
    /// sessions.
    async fn user_detail(
        &self,
        id: Uuid,
    ) -> Result<(Account, Vec<CountryCounter>, Vec<SessionView>), AdminError>;
    async fn set_blocked(&self, id: Uuid, blocked: bool) -> Result<Account, AdminError>;
    async fn revoke_user_sessions(&self, id: Uuid) -> Result<usize, AdminError>;
}

/// [`AdminService`] over PostgreSQL with the admin cache; also the binary's
/// [`AdminSessionResolver`].
pub struct PgAdminService {
    pool: Pool,
    users: Arc<dyn UserService>,
    auth: Arc<dyn AuthService>,
    settings: AdminSettings,
    cache: AdminCache,
    limits: LoginLimits,
    hashes: HashGate,
}

fn dberr(e: impl Into<DbError>) -> AdminError {
    AdminError::Db(e.into())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl PgAdminService {
    async fn hash(&self, password: &str) -> Result<String, AdminError> {
        let password = password.to_owned();
        self.hashes
            .run(move || password::hash(&password))
            .await
            .ok_or(AdminError::Busy)?
            .map_err(|e| AdminError::Hash(e.to_string()))
    }

    /// `Err(Busy)` when too many checks are running and waiting.
    async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool, AdminError> {
        let password = password.to_owned();
        self.hashes
            .run(move || match stored {
                Some(h) => password::verify(&password, &h),
                None => {
                    password::burn(&password);
                    false
                }
            })
            .await
            .ok_or(AdminError::Busy)
    }
}

impl PgAdminService {
    pub fn new(
        pool: Pool,
        users: Arc<dyn UserService>,
        auth: Arc<dyn AuthService>,
        settings: AdminSettings,
    ) -> Self {
        Self {
            pool,
            users,
            auth,
            limits: LoginLimits::from_setting(settings.login_limit),
            hashes: HashGate::new(settings.hash_concurrency),
            settings,
            cache: AdminCache::default(),
        }
    }

    /// Creates the bootstrap admin unless an admin of that name exists (its
    /// password is then left alone), then loads admins and live sessions.
    /// Runs at every boot; idempotent.
    pub async fn warm(&self, bootstrap: Option<(&str, &str)>) -> Result<(), AdminError> {
        let mut conn = self.pool.get().await.map_err(dberr)?;
        if let Some((username, pw)) = bootstrap {
            if db::username_exists(&mut conn, username).await? {
                tracing::info!(username, "bootstrap admin exists; password left unchanged");
            } else {
                let row = new_admin_row(username, self.hash(pw).await?);
                match db::insert_admin(&mut conn, &row).await? {
                    Some(_) => tracing::info!(username, "bootstrap admin created"),
                    None => {
                        tracing::info!(username, "bootstrap admin exists; password left unchanged");
                    }
                }
            }
        }
        drop(conn);
        self.reload().await?;
        let (a, s) = self.cache.counts();
        tracing::info!(admins = a, sessions = s, "admin cache warm");
        Ok(())
    }

    /// Reads admins and live admin sessions whole into the cache (at boot,
    /// and when a peer announced a change: the tables are small).
    pub(crate) async fn reload(&self) -> Result<(), AdminError> {
        let mut conn = self.pool.get().await.map_err(dberr)?;
        let admins = db::load_admins(&mut conn).await?;
        let sessions = db::load_live_sessions(&mut conn).await?;
        self.cache.replace_all(admins, sessions);
        Ok(())
    }

    pub fn cached_counts(&self) -> (usize, usize) {
        self.cache.counts()
    }
}

fn new_admin_row(username: &str, password_hash: String) -> AdminRow {
    let now = Utc::now();
    AdminRow {
        id: galaxy_core::new_id(),
        username: username.to_owned(),
        password_hash,
        created_at: now,
        password_changed_at: now,
        disabled_at: None,
    }
}

#[async_trait::async_trait]
impl AdminService for PgAdminService {
    #[tracing::instrument(skip(self, password))]
    async fn login(
        &self,
        username: &str,
        password: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<(String, DateTime<Utc>), AdminError> {
        let ip_key = source_ip.map(|ip| ip.to_string()).unwrap_or_default();
        // The attempt is reserved (counted) before the hash; see `limiter`.
        let limits = self.limits;
        let mut conn = self.pool.get().await.map_err(dberr)?;
        let reserved = conn
            .transaction(async |c| {
                limiter::reserve(c, &ip_key, username, limits)
                    .await
                    .map_err(AdminError::from)
            })
            .await?;
        let attempt = match reserved {
            Ok(id) => id,
            Err(secs) => {
                tracing::warn!(retry_after = secs, "admin login rate limited");
                return Err(AdminError::RateLimited(secs));
            }
        };
        // No connection is held across the hash.
        drop(conn);
        let admin = self
            .cache
            .by_username(username)
            .filter(|a| a.disabled_at.is_none());
        let checked = self
            .verify(password, admin.as_ref().map(|a| a.password_hash.clone()))
            .await;
        let ok = match checked {
            Ok(ok) => ok,
            Err(e) => {
                // Never checked: the attempt does not count.
                let mut conn = self.pool.get().await.map_err(dberr)?;
                limiter::release(&mut conn, attempt).await?;
                tracing::warn!("admin login refused: too many password checks at once");
                return Err(e);
            }
        };
        let Some(admin) = admin.filter(|_| ok) else {
            tracing::warn!("admin login failed");
            return Err(AdminError::BadCredentials);
        };
        let bytes: [u8; 32] = rand::rng().random();
        let token = format!("{ADMIN_TOKEN_PREFIX}{}", hex::encode(bytes));
        let d = digest(&token);
        let now = Utc::now();
        let expires_at = now
            + chrono::Duration::from_std(self.settings.session_ttl)
                .unwrap_or(chrono::Duration::MAX);
        let row = SessionRow {
            id: galaxy_core::new_id(),
            admin_id: admin.id,
            token_hash: hex::encode(d),
            created_at: now,
            expires_at,
        };
        let mut conn = self.pool.get().await.map_err(dberr)?;
        // A successful login is not a failure: its reservation goes.
        limiter::release(&mut conn, attempt).await?;
        db::insert_session(&mut conn, &row).await?;
        self.cache.put_session(
            d,
            CachedSession {
                id: row.id,
                admin_id: admin.id,
                expires_at,
            },
        );
        tracing::info!(admin_id = %admin.id, session_id = %row.id, "admin signed in");
        Ok((token, expires_at))
    }

    #[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
    async fn logout(&self, who: &AdminPrincipal) -> Result<(), AdminError> {
        let mut conn = self.pool.get().await.map_err(dberr)?;
        db::revoke_session(&mut conn, who.session_id).await?;
        self.cache.remove_sessions(&[who.session_id]);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(admin_id = %who.admin_id))]
    async fn change_password(
        &self,
        who: &AdminPrincipal,
        current: &str,
        new: &str,
    ) -> Result<(), AdminError> {
        let admin = self
            .cache
            .admin(who.admin_id)
            .ok_or(AdminError::BadCredentials)?;
        if !self
            .verify(current, Some(admin.password_hash.clone()))
            .await?
        {
            return Err(AdminError::WrongPassword);
        }
        let new_hash = self.hash(new).await?;
        let (admin_id, keep) = (who.admin_id, who.session_id);
        let mut conn = self.pool.get().await.map_err(dberr)?;
        let (row, revoked) = conn
            .transaction(async |c| db::rotate_password(c, admin_id, keep, &new_hash).await)
            .await?;
        self.cache.put_admin(row);
        self.cache.remove_sessions(&revoked);
        tracing::info!(revoked_sessions = revoked.len(), "admin password changed");
        Ok(())
    }

    fn list_admins(&self, page: Page) -> Paged<AdminView> {
        let all: Vec<AdminView> = self.cache.admins().iter().map(AdminView::from).collect();
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        Paged::new(page.slice(&all), page, total)
    }

    #[tracing::instrument(skip(self, password))]
    async fn create_admin(&self, username: &str, password: &str) -> Result<AdminView, AdminError> {
        if self.cache.by_username(username).is_some() {
            return Err(AdminError::UsernameTaken);
        }
        let row = new_admin_row(username, self.hash(password).await?);
        let mut conn = self.pool.get().await.map_err(dberr)?;
        let row = db::insert_admin(&mut conn, &row)
            .await?
            .ok_or(AdminError::UsernameTaken)?;
        let view = AdminView::from(&row);
        self.cache.put_admin(row);
        tracing::info!(admin_id = %view.id, "admin created");
        Ok(view)
    }

    fn list_users(&self, filter: &AccountFilter, page: Page) -> Paged<Account> {
        self.users.list(filter, page)
    }

    async fn user_detail(
        &self,
        id: Uuid,
    ) -> Result<(Account, Vec<CountryCounter>, Vec<SessionView>), AdminError> {
        let account = self.users.account(id).ok_or(UserError::NotFound)?;
        let mut conn = self.pool.get().await.map_err(dberr)?;
        let counters = galaxy_geo::counters_for(&mut conn, id).await?;
        Ok((account, counters, self.auth.sessions_of(id)))
    }

    #[tracing::instrument(skip(self))]
    async fn set_blocked(&self, id: Uuid, blocked: bool) -> Result<Account, AdminError> {
        Ok(self.users.set_blocked(id, blocked).await?)
    }

    #[tracing::instrument(skip(self))]
    async fn revoke_user_sessions(&self, id: Uuid) -> Result<usize, AdminError> {
        if self.users.account(id).is_none() {
            return Err(UserError::NotFound.into());
        }
        Ok(self.auth.revoke_all(id).await?)
    }
}

impl AdminSessionResolver for PgAdminService {
    fn resolve_admin(&self, token: &str) -> Option<AdminPrincipal> {
        let rest = token.strip_prefix(ADMIN_TOKEN_PREFIX)?;
        if rest.len() != 64 {
            return None;
        }
        let (s, username) = self.cache.resolve(&digest(token), Utc::now())?;
        Some(AdminPrincipal {
            admin_id: s.admin_id,
            session_id: s.id,
            username,
        })
    }
}

/// Admins and their sessions follow the peers' changes (SYSTEM.md §12):
/// any announced change reloads both small tables.
#[async_trait::async_trait]
impl galaxy_db::announce::Coherent for PgAdminService {
    fn channel(&self) -> &'static str {
        db::CHANNEL
    }

    async fn reload(&self, _admins: &[Uuid]) -> Result<(), String> {
        PgAdminService::reload(self)
            .await
            .map_err(|e| e.to_string())
    }

    async fn reload_all(&self) -> Result<(), String> {
        PgAdminService::reload(self)
            .await
            .map_err(|e| e.to_string())
    }
}
