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
use crate::limiter::FailureLimiter;
use crate::password;

/// Admin tokens start with this (user tokens with `gu_`); they live in
/// another table and resolve through another resolver.
pub const ADMIN_TOKEN_PREFIX: &str = "ga_";

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub session_ttl: Duration,
    /// Failed logins per source IP per window; per username it is half.
    pub login_limit: RateLimit,
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
    ip_failures: FailureLimiter,
    username_failures: FailureLimiter,
}

fn dberr(e: impl Into<DbError>) -> AdminError {
    AdminError::Db(e.into())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn hash_blocking(password: &str) -> Result<String, AdminError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| AdminError::Hash(e.to_string()))?
        .map_err(|e| AdminError::Hash(e.to_string()))
}

async fn verify_blocking(password: &str, stored: Option<String>) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || match stored {
        Some(h) => password::verify(&password, &h),
        None => {
            password::burn(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

impl PgAdminService {
    pub fn new(
        pool: Pool,
        users: Arc<dyn UserService>,
        auth: Arc<dyn AuthService>,
        settings: AdminSettings,
    ) -> Self {
        let window = settings.login_limit.window;
        let per_ip = settings.login_limit.count;
        Self {
            pool,
            users,
            auth,
            ip_failures: FailureLimiter::new(per_ip, window),
            username_failures: FailureLimiter::new((per_ip / 2).max(1), window),
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
                let row = new_admin_row(username, hash_blocking(pw).await?);
                match db::insert_admin(&mut conn, &row).await? {
                    Some(_) => tracing::info!(username, "bootstrap admin created"),
                    None => {
                        tracing::info!(username, "bootstrap admin exists; password left unchanged")
                    }
                }
            }
        }
        let admins = db::load_admins(&mut conn).await?;
        let sessions = db::load_live_sessions(&mut conn).await?;
        self.cache.replace_all(admins, sessions);
        let (a, s) = self.cache.counts();
        tracing::info!(admins = a, sessions = s, "admin cache warm");
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
        let by_ip = self.ip_failures.check(&ip_key).err();
        let by_name = self.username_failures.check(username).err();
        if let Some(secs) = by_ip.into_iter().chain(by_name).max() {
            tracing::warn!(retry_after = secs, "admin login rate limited");
            return Err(AdminError::RateLimited(secs));
        }
        let admin = self
            .cache
            .by_username(username)
            .filter(|a| a.disabled_at.is_none());
        let ok = verify_blocking(password, admin.as_ref().map(|a| a.password_hash.clone())).await;
        let Some(admin) = admin.filter(|_| ok) else {
            self.ip_failures.record_failure(&ip_key);
            self.username_failures.record_failure(username);
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
        if !verify_blocking(current, Some(admin.password_hash.clone())).await {
            return Err(AdminError::WrongPassword);
        }
        let new_hash = hash_blocking(new).await?;
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
        let row = new_admin_row(username, hash_blocking(password).await?);
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
