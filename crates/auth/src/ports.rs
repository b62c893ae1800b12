//! What auth does for its neighbours: resolving a bearer token for every
//! module's `UserPrincipal` extractor (from the session cache, no database
//! round trip), and revoking sessions when the user module deletes or
//! blocks an account.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use galaxy_core::{ApiError, UserPrincipal, UserSessionResolver};
use galaxy_user::UserEvents;
use uuid::Uuid;

use crate::service::{AuthService, PgAuthService, db};
use crate::session::{self, Revoke};
use crate::token;

impl UserSessionResolver for PgAuthService {
    fn resolve_user(&self, token: &str, source_ip: Option<IpAddr>) -> Option<UserPrincipal> {
        if !token::well_formed(token) {
            return None;
        }
        let entry = self.sessions.by_digest(&token::token_digest(token))?;
        let now_ms = Utc::now().timestamp_millis();
        if entry.expires_at.timestamp_millis() <= now_ms || !self.users.is_active(entry.account_id)
        {
            return None;
        }
        // At most one dirty mark per session per second keeps the lock cold.
        let seen = entry.last_seen_ms.load(Ordering::Relaxed);
        if now_ms - seen >= 1000
            && entry
                .last_seen_ms
                .compare_exchange(seen, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(entry.id);
        }
        self.counters.record(entry.account_id, source_ip);
        Some(UserPrincipal {
            account_id: entry.account_id,
            session_id: entry.id,
        })
    }
}

/// Deleting or blocking an account revokes its sessions. Both are
/// idempotent (a revoked session is never revoked again): the user module
/// runs them again after a crash or a failure (decision HARD-15). Until
/// then the account's status already keeps its tokens from resolving.
#[async_trait::async_trait]
impl UserEvents for PgAuthService {
    async fn user_deleted(&self, account_id: Uuid) -> Result<(), ApiError> {
        self.revoke_all(account_id).await?;
        Ok(())
    }

    async fn user_blocked(
        &self,
        account_id: Uuid,
        blocked_at: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        // A block completed late (after a crash) must not revoke a session
        // opened after an unblock that came meanwhile.
        let mut conn = self.pool.get().await.map_err(db)?;
        let mut revoked = session::revoke(&mut conn, Revoke::AccountUntil(account_id, blocked_at))
            .await
            .map_err(db)?;
        revoked.extend(
            self.sessions
                .of_account(account_id)
                .iter()
                .filter(|e| e.created_at <= blocked_at)
                .map(|e| e.id),
        );
        self.remove_from_cache(&revoked);
        tracing::info!(%account_id, "sessions of the blocked account revoked");
        Ok(())
    }
}
