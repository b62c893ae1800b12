//! `AuthService`: email-code sign-in and user sessions over PostgreSQL and
//! the session cache (what it does for other modules: `ports`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use galaxy_core::env::RateLimit;
use galaxy_db::{DbError, Pool};
use galaxy_geo::CountryCounters;
use galaxy_telemetry::email_hash;
use galaxy_user::{Account, AccountStatus, UserService};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cache::SessionCache;
use crate::challenge::{self, Limits, NewChallenge};
use crate::error::AuthError;
use crate::retention;
use crate::session::{self, Address, Entry, Revoke, SessionView};
use crate::token;
use crate::warm;

/// A verify that failed with a wrong code counts against the challenge;
/// at this many wrong codes it is dead.
pub const MAX_WRONG_CODES: i32 = 5;

/// How often `last_seen_at` is written back.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How often expired challenges and sessions are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub session_ttl: Duration,
    pub code_ttl: Duration,
    pub email_code_limit: RateLimit,
    pub ip_code_limit: RateLimit,
    /// How long an expired challenge is kept (`BACKEND_AUTH_CHALLENGE_RETENTION`).
    pub challenge_retention: Duration,
    /// How long an expired or revoked session is kept (`BACKEND_AUTH_SESSION_RETENTION`).
    pub session_retention: Duration,
}

/// A successful verify.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account: Account,
    /// The account was created by this sign-in.
    pub created: bool,
}

/// The auth module's public face.
#[async_trait::async_trait]
pub trait AuthService: Send + Sync + 'static {
    /// Stores a challenge and enqueues the code mail (one transaction).
    /// `email` must be normalised.
    async fn request_code(
        &self,
        email: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<(Uuid, DateTime<Utc>), AuthError>;
    /// Checks a code; on success creates the account if needed and a session.
    async fn verify(
        &self,
        challenge_id: Uuid,
        code: &str,
        source_ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<SignIn, AuthError>;
    /// Live sessions of an account, newest first (cache).
    fn sessions_of(&self, account_id: Uuid) -> Vec<SessionView>;
    /// Revokes one session of `account_id`; another account's session (or an
    /// unknown id) is `SessionNotFound`.
    async fn revoke_session(&self, account_id: Uuid, session_id: Uuid) -> Result<(), AuthError>;
    /// Revokes every session of an account; returns how many.
    async fn revoke_all(&self, account_id: Uuid) -> Result<usize, AuthError>;
}

/// [`AuthService`] over PostgreSQL, with the session cache; also the
/// binary's [`UserSessionResolver`] and a [`UserEvents`] listener.
pub struct PgAuthService {
    pub(crate) pool: Pool,
    pub(crate) users: Arc<dyn UserService>,
    /// The request counters, and the GeoIP reader they hold (sign-in looks
    /// the declared country up with it).
    pub(crate) counters: CountryCounters,
    settings: AuthSettings,
    pub(crate) sessions: SessionCache,
    /// Sessions whose `last_seen_at` moved since the last flush.
    pub(crate) dirty: Mutex<HashSet<Uuid>>,
}

pub(crate) fn db(e: impl Into<DbError>) -> AuthError {
    AuthError::Db(e.into())
}

enum Verdict {
    Wrong,
    Unavailable(AccountStatus),
    SignedIn(Box<SignedInRows>),
}

/// What a successful verify committed, for the caches.
struct SignedInRows {
    account: Account,
    created: bool,
    digest: [u8; 32],
    entry: Entry,
}

impl PgAuthService {
    pub fn new(
        pool: Pool,
        users: Arc<dyn UserService>,
        counters: CountryCounters,
        settings: AuthSettings,
    ) -> Self {
        Self {
            pool,
            users,
            counters,
            settings,
            sessions: SessionCache::default(),
            dirty: Mutex::new(HashSet::new()),
        }
    }

    /// Loads every live session (start-up; before `/readyz` turns 200).
    pub async fn warm(&self) -> Result<usize, AuthError> {
        let sessions = warm::load(&self.pool).await?;
        let n = sessions.len();
        self.sessions.install(sessions);
        tracing::info!(sessions = n, "session cache warm");
        Ok(n)
    }

    /// Reads these sessions again and applies them to the cache (a peer
    /// opened or revoked them).
    pub(crate) async fn reload_sessions(&self, ids: &[Uuid]) -> Result<(), AuthError> {
        let mut conn = self.pool.get().await.map_err(db)?;
        let rows = session::load_live_by_ids(&mut conn, ids).await?;
        self.sessions.apply(ids, rows);
        Ok(())
    }

    pub fn cached_sessions(&self) -> usize {
        self.sessions.len()
    }

    fn country(&self, ip: Option<IpAddr>) -> Option<String> {
        let ip = ip?;
        match self.counters.geo().country(ip) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "geoip lookup failed; no declared country");
                None
            }
        }
    }

    /// Writes the pending `last_seen_at` values in one statement. On failure
    /// they stay pending for the next run.
    pub async fn flush_last_seen(&self) -> Result<usize, AuthError> {
        let ids: Vec<Uuid> = std::mem::take(
            &mut *self
                .dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let (ids, seen): (Vec<Uuid>, Vec<DateTime<Utc>>) = ids
            .into_iter()
            .filter_map(|id| self.sessions.by_id(id).map(|e| (id, e.last_seen())))
            .unzip();
        let result = async {
            let mut conn = self.pool.get().await.map_err(db)?;
            Ok::<_, AuthError>(session::write_last_seen(&mut conn, &ids, &seen).await?)
        }
        .await;
        if result.is_err() {
            self.dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(ids);
        }
        result
    }

    /// The background task writing `last_seen_at` every second and once more
    /// at shutdown; also evicts expired sessions from the cache.
    /// Deletes challenges and sessions past their retention (see
    /// `retention`); returns (challenges, sessions) deleted.
    pub async fn prune(&self) -> Result<(usize, usize), AuthError> {
        let now = Utc::now();
        let ago =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let s = &self.settings;
        // A challenge still counts against a code-request window while it is in it.
        let keep = s
            .challenge_retention
            .max(s.email_code_limit.window)
            .max(s.ip_code_limit.window);
        let mut conn = self.pool.get().await.map_err(db)?;
        let mut challenges = 0;
        loop {
            let n = retention::prune_challenges(&mut conn, ago(keep)).await?;
            challenges += n;
            if n < usize::try_from(retention::PRUNE_CHUNK).unwrap_or(usize::MAX) {
                break;
            }
        }
        let mut sessions = 0;
        loop {
            let n = retention::prune_sessions(&mut conn, ago(s.session_retention)).await?;
            sessions += n;
            if n < usize::try_from(retention::PRUNE_CHUNK).unwrap_or(usize::MAX) {
                break;
            }
        }
        if challenges + sessions > 0 {
            tracing::info!(challenges, sessions, "expired sign-in data pruned");
        }
        Ok((challenges, sessions))
    }

    /// Runs [`Self::prune`] every ten minutes (the first right away) until `shutdown`.
    pub fn spawn_pruner(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if let Err(e) = this.prune().await {
                    tracing::warn!(error = %e, "pruning expired sign-in data failed; will retry");
                }
            }
        })
    }

    pub fn spawn_flusher(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match this.flush_last_seen().await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("session last-seen flush recovered");
                    }
                    Ok(_) => {}
                    // Logged once per outage, not every second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "session last-seen flush failed; will retry");
                    }
                    Err(_) => {}
                }
                this.sessions.evict_expired(Utc::now());
            }
            if let Err(e) = this.flush_last_seen().await {
                tracing::warn!(error = %e, "final session last-seen flush failed");
            }
        })
    }

    pub(crate) fn remove_from_cache(&self, ids: &[Uuid]) {
        self.sessions.remove(ids);
        let mut dirty = self
            .dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in ids {
            dirty.remove(id);
        }
    }
}

#[async_trait::async_trait]
impl AuthService for PgAuthService {
    #[tracing::instrument(skip_all, fields(email_hash = %email_hash(email)))]
    async fn request_code(
        &self,
        email: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<(Uuid, DateTime<Utc>), AuthError> {
        let now = Utc::now();
        let id = galaxy_core::new_id();
        let code = token::new_code();
        let code_hash = token::code_hash(id, &code);
        let expires_at = now
            + chrono::Duration::from_std(self.settings.code_ttl).unwrap_or(chrono::Duration::MAX);
        let ttl_minutes = self.settings.code_ttl.as_secs().div_ceil(60).max(1);
        let mut mail = galaxy_mail::templates::login_code(email, &code, ttl_minutes);
        // The mail module scrubs the code once sent, or once it expired.
        mail.secret_until = Some(expires_at);
        let ip = source_ip.map(|ip| ip.to_string());
        let limits = Limits {
            email: self.settings.email_code_limit,
            ip: self.settings.ip_code_limit,
        };
        let mut conn = self.pool.get().await.map_err(db)?;
        // The address lock is shared by every request from one address, so
        // the locks are held only over the statement that counts both
        // windows and inserts the challenge: the mail is written first, and
        // a limited request rolls the whole transaction back.
        let written = conn
            .transaction(async |c| {
                galaxy_mail::enqueue(c, &mail).await?;
                let ip_key = ip.as_ref().map(|ip| format!("auth.ip:{ip}"));
                challenge::lock_keys(c, &format!("auth.email:{email}"), ip_key.as_deref()).await?;
                let challenge = NewChallenge {
                    id,
                    email,
                    code_hash: &code_hash,
                    expires_at,
                    source_ip: ip.clone(),
                    created_at: now,
                };
                challenge::insert_within_limits(c, &challenge, limits)
                    .await?
                    .map_err(AuthError::RateLimited)
            })
            .await;
        if let Err(AuthError::RateLimited(secs)) = &written {
            tracing::info!(retry_after = secs, "login code request rate limited");
        }
        written?;
        tracing::info!(challenge_id = %id, "login code issued");
        Ok((id, expires_at))
    }

    #[tracing::instrument(skip(self, code, user_agent, source_ip))]
    async fn verify(
        &self,
        challenge_id: Uuid,
        code: &str,
        source_ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<SignIn, AuthError> {
        let now = Utc::now();
        let token = token::new_token();
        let digest = token::token_digest(&token);
        let expires_at = now
            + chrono::Duration::from_std(self.settings.session_ttl)
                .unwrap_or(chrono::Duration::MAX);
        let user_agent: Option<Arc<str>> =
            user_agent.map(|ua| ua.chars().take(256).collect::<String>().into());
        // Looked up before the transaction: the geo reader is memory-only,
        // and only a newly created account keeps the answer.
        let country = self.country(source_ip);
        let mut conn = self.pool.get().await.map_err(db)?;
        let verdict = conn
            .transaction(async |c| {
                let Some(ch) = challenge::lock(c, challenge_id).await? else {
                    return Err(AuthError::ChallengeInvalid);
                };
                if ch.consumed_at.is_some()
                    || ch.expires_at <= now
                    || ch.attempts >= MAX_WRONG_CODES
                {
                    return Err(AuthError::ChallengeInvalid);
                }
                if !token::code_matches(ch.id, code, &ch.code_hash) {
                    challenge::count_wrong_attempt(c, ch.id).await?;
                    return Ok(Verdict::Wrong);
                }
                let (account, created) =
                    galaxy_user::find_or_create(c, &ch.email, country.as_deref()).await?;
                if account.status != AccountStatus::Active {
                    // The code is used up all the same.
                    challenge::consume(c, ch.id, now).await?;
                    return Ok(Verdict::Unavailable(account.status));
                }
                let entry = Entry {
                    id: galaxy_core::new_id(),
                    account_id: account.id,
                    created_at: now,
                    expires_at,
                    source_ip: source_ip.map(Address::Ip),
                    user_agent: user_agent.clone(),
                    last_seen_ms: AtomicI64::new(now.timestamp_millis()),
                };
                session::insert_consuming(c, ch.id, &digest, &entry).await?;
                Ok(Verdict::SignedIn(Box::new(SignedInRows {
                    account,
                    created,
                    digest,
                    entry,
                })))
            })
            .await?;
        // Committed: now (and only now) the caches learn about it.
        match verdict {
            Verdict::Wrong => {
                tracing::info!("wrong login code");
                Err(AuthError::InvalidCode)
            }
            Verdict::Unavailable(status) => {
                tracing::info!(status = status.as_str(), "sign-in refused");
                Err(AuthError::AccountUnavailable(status))
            }
            Verdict::SignedIn(rows) => {
                let SignedInRows {
                    account,
                    created,
                    digest,
                    entry,
                } = *rows;
                if created {
                    self.users.account_committed(account.clone());
                }
                let session_id = entry.id;
                self.sessions.insert(digest, entry);
                tracing::info!(account_id = %account.id, session_id = %session_id, created, "signed in");
                Ok(SignIn {
                    token,
                    expires_at,
                    account,
                    created,
                })
            }
        }
    }

    fn sessions_of(&self, account_id: Uuid) -> Vec<SessionView> {
        let now = Utc::now();
        self.sessions
            .of_account(account_id)
            .iter()
            .filter(|e| e.expires_at > now)
            .map(|e| e.view())
            .collect()
    }

    #[tracing::instrument(skip(self))]
    async fn revoke_session(&self, account_id: Uuid, session_id: Uuid) -> Result<(), AuthError> {
        let owned = self
            .sessions
            .by_id(session_id)
            .is_some_and(|e| e.account_id == account_id);
        if !owned {
            return Err(AuthError::SessionNotFound);
        }
        let mut conn = self.pool.get().await.map_err(db)?;
        let revoked = session::revoke(&mut conn, Revoke::Ids(&[session_id])).await?;
        self.remove_from_cache(&[session_id]);
        if revoked.is_empty() {
            return Err(AuthError::SessionNotFound);
        }
        tracing::info!(%session_id, "session revoked");
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn revoke_all(&self, account_id: Uuid) -> Result<usize, AuthError> {
        let mut conn = self.pool.get().await.map_err(db)?;
        let mut revoked = session::revoke(&mut conn, Revoke::Account(account_id)).await?;
        // Also drop cached entries the statement did not return (none in the
        // normal case: the cache mirrors the table).
        revoked.extend(self.sessions.of_account(account_id).iter().map(|e| e.id));
        self.remove_from_cache(&revoked);
        tracing::info!(%account_id, "every session of the account revoked");
        Ok(revoked.len())
    }
}
