//! User sessions: the whole table of live sessions in memory (keyed by the
//! token's SHA-256) and the database functions behind it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use galaxy_db::announce::announce;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::schema::auth_sessions;

/// A live session as shown to its owner and to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// Updated in batches (about once a second), not on every request.
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

pub(crate) struct Entry {
    pub id: Uuid,
    pub account_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Unix milliseconds; bumped by the resolver at most once a second.
    pub last_seen_ms: AtomicI64,
}

impl Entry {
    pub fn last_seen(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(AtomicI64::load(&self.last_seen_ms, Ordering::Relaxed))
            .single()
            .unwrap_or(self.created_at)
    }

    pub fn view(&self) -> SessionView {
        SessionView {
            id: self.id,
            created_at: self.created_at,
            last_seen_at: self.last_seen(),
            expires_at: self.expires_at,
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

#[derive(Default)]
pub(crate) struct SessionCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    by_digest: HashMap<[u8; 32], Arc<Entry>>,
    digest_of: HashMap<Uuid, [u8; 32]>,
    by_account: HashMap<Uuid, HashSet<Uuid>>,
}

impl Inner {
    fn insert(&mut self, digest: [u8; 32], e: Arc<Entry>) {
        self.digest_of.insert(e.id, digest);
        self.by_account
            .entry(e.account_id)
            .or_default()
            .insert(e.id);
        self.by_digest.insert(digest, e);
    }

    fn remove(&mut self, id: Uuid) -> Option<Arc<Entry>> {
        let digest = self.digest_of.remove(&id)?;
        let e = self.by_digest.remove(&digest)?;
        if let Some(set) = self.by_account.get_mut(&e.account_id) {
            set.remove(&id);
            if set.is_empty() {
                self.by_account.remove(&e.account_id);
            }
        }
        Some(e)
    }
}

impl SessionCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        galaxy_core::sync::read(&self.inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        galaxy_core::sync::write(&self.inner)
    }

    pub fn replace_all(&self, rows: Vec<([u8; 32], Entry)>) {
        let mut inner = Inner::default();
        for (digest, e) in rows {
            inner.insert(digest, Arc::new(e));
        }
        *self.write() = inner;
    }

    /// Applies a reload of `ids`: those in `rows` are (re)placed, the others
    /// (revoked, expired, deleted) removed.
    pub fn apply(&self, ids: &[Uuid], rows: Vec<([u8; 32], Entry)>) {
        let mut inner = self.write();
        for id in ids {
            inner.remove(*id);
        }
        for (digest, e) in rows {
            inner.insert(digest, Arc::new(e));
        }
    }

    pub fn insert(&self, digest: [u8; 32], e: Entry) {
        self.write().insert(digest, Arc::new(e));
    }

    pub fn by_digest(&self, digest: &[u8; 32]) -> Option<Arc<Entry>> {
        self.read().by_digest.get(digest).cloned()
    }

    pub fn by_id(&self, id: Uuid) -> Option<Arc<Entry>> {
        let inner = self.read();
        inner
            .digest_of
            .get(&id)
            .and_then(|d| inner.by_digest.get(d))
            .cloned()
    }

    pub fn of_account(&self, account_id: Uuid) -> Vec<Arc<Entry>> {
        let inner = self.read();
        let mut out: Vec<Arc<Entry>> = inner
            .by_account
            .get(&account_id)
            .into_iter()
            .flatten()
            .filter_map(|id| inner.digest_of.get(id))
            .filter_map(|d| inner.by_digest.get(d))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out
    }

    pub fn remove(&self, ids: &[Uuid]) {
        let mut inner = self.write();
        for id in ids {
            inner.remove(*id);
        }
    }

    /// Drops sessions past their expiry (they no longer resolve anyway).
    pub fn evict_expired(&self, now: DateTime<Utc>) -> usize {
        let expired: Vec<Uuid> = self
            .read()
            .by_digest
            .values()
            .filter(|e| e.expires_at <= now)
            .map(|e| e.id)
            .collect();
        self.remove(&expired);
        expired.len()
    }

    pub fn len(&self) -> usize {
        self.read().by_digest.len()
    }
}

#[derive(QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    account_id: Uuid,
    #[diesel(sql_type = Text)]
    token_hash: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    last_seen_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    source_ip: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    user_agent: Option<String>,
}

/// The channel on which session changes are announced to every backend.
pub(crate) const CHANNEL: &str = "galaxy_auth_sessions";

const LIVE_COLUMNS: &str = "SELECT id, account_id, token_hash, created_at, last_seen_at, expires_at, \
                host(source_ip) AS source_ip, user_agent \
         FROM auth_sessions WHERE revoked_at IS NULL AND expires_at > now()";

/// Every live (not revoked, not expired) session.
pub(crate) async fn load_live(conn: &mut AsyncPgConnection) -> QueryResult<Vec<([u8; 32], Entry)>> {
    let rows: Vec<SessionRow> = diesel::sql_query(LIVE_COLUMNS).load(conn).await?;
    Ok(decode(rows))
}

/// Those of `ids` that are live.
pub(crate) async fn load_live_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<([u8; 32], Entry)>> {
    let rows: Vec<SessionRow> = diesel::sql_query(format!("{LIVE_COLUMNS} AND id = ANY($1)"))
        .bind::<Array<SqlUuid>, _>(ids)
        .load(conn)
        .await?;
    Ok(decode(rows))
}

fn decode(rows: Vec<SessionRow>) -> Vec<([u8; 32], Entry)> {
    rows.into_iter()
        .filter_map(|r| {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&r.token_hash, &mut digest).ok()?;
            Some((
                digest,
                Entry {
                    id: r.id,
                    account_id: r.account_id,
                    created_at: r.created_at,
                    expires_at: r.expires_at,
                    source_ip: r.source_ip,
                    user_agent: r.user_agent,
                    last_seen_ms: AtomicI64::new(r.last_seen_at.timestamp_millis()),
                },
            ))
        })
        .collect()
}

pub(crate) async fn insert(
    conn: &mut AsyncPgConnection,
    digest: &[u8; 32],
    e: &Entry,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO auth_sessions (id, account_id, token_hash, created_at, last_seen_at, expires_at, source_ip, user_agent) \
         VALUES ($1, $2, $3, $4, $4, $5, $6::inet, $7)",
    )
    .bind::<SqlUuid, _>(e.id)
    .bind::<SqlUuid, _>(e.account_id)
    .bind::<Text, _>(hex::encode(digest))
    .bind::<Timestamptz, _>(e.created_at)
    .bind::<Timestamptz, _>(e.expires_at)
    .bind::<Nullable<Text>, _>(e.source_ip.as_deref())
    .bind::<Nullable<Text>, _>(e.user_agent.as_deref())
    .execute(conn)
    .await
    .map(drop)
}

/// Which live sessions a revoke ends.
pub(crate) enum Revoke<'a> {
    /// These sessions (a sign-out).
    Ids(&'a [Uuid]),
    /// Every live session of an account, including any the cache does not
    /// hold (an account deleted).
    Account(Uuid),
    /// An account's live sessions created up to a moment (a block: sessions
    /// made after it were made by an unblocked account).
    AccountUntil(Uuid, DateTime<Utc>),
}

/// Revokes the live sessions `which` names; returns the ids actually revoked.
pub(crate) async fn revoke(
    conn: &mut AsyncPgConnection,
    which: Revoke<'_>,
) -> QueryResult<Vec<Uuid>> {
    // One statement shape, the filter its only part that varies.
    macro_rules! revoke_live {
        ($c:expr, $filter:expr) => {
            diesel::update(
                auth_sessions::table
                    .filter($filter)
                    .filter(auth_sessions::revoked_at.is_null()),
            )
            .set(auth_sessions::revoked_at.eq(Utc::now()))
            .returning(auth_sessions::id)
            .get_results::<Uuid>($c)
            .await?
        };
    }
    conn.transaction(async |c| {
        let revoked = match which {
            Revoke::Ids(ids) => revoke_live!(c, auth_sessions::id.eq_any(ids)),
            Revoke::Account(account) => revoke_live!(c, auth_sessions::account_id.eq(account)),
            Revoke::AccountUntil(account, until) => revoke_live!(
                c,
                auth_sessions::account_id
                    .eq(account)
                    .and(auth_sessions::created_at.le(until))
            ),
        };
        // Every backend drops them from its cache on commit.
        announce(c, CHANNEL, &revoked).await?;
        Ok(revoked)
    })
    .await
}

/// One statement for a whole batch of `last_seen_at` updates; never moves a
/// value backwards.
pub(crate) async fn write_last_seen(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    seen: &[DateTime<Utc>],
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE auth_sessions AS s SET last_seen_at = v.seen \
         FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, seen) \
         WHERE s.id = v.id AND s.last_seen_at < v.seen",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Timestamptz>, _>(seen)
    .execute(conn)
    .await
}
