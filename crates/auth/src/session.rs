//! User sessions: what the cache holds of each (`cache`) and the database
//! functions behind it.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use galaxy_db::announce::announce;
use galaxy_db::page_runs::Pages;
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

/// A session's source address: the address itself when its text is what
/// PostgreSQL gave (held inline, no allocation), else that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    Ip(IpAddr),
    Text(Box<str>),
}

impl Address {
    fn from_text(text: String) -> Self {
        match text.parse::<IpAddr>() {
            // An IPv4 address parses only from its one canonical text;
            // an IPv6 one is kept parsed only when it prints back the same.
            Ok(ip) if ip.is_ipv4() || ip.to_string() == text => Self::Ip(ip),
            _ => Self::Text(text.into_boxed_str()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => fmt::Display::fmt(ip, f),
            Self::Text(text) => f.write_str(text),
        }
    }
}

/// One string per distinct user agent among the sessions a load reads
/// (a few browsers' agents are most sessions' agents).
pub(crate) type Agents = HashSet<Arc<str>>;

fn shared(agents: &mut Agents, agent: String) -> Arc<str> {
    if let Some(a) = agents.get(agent.as_str()) {
        return Arc::clone(a);
    }
    let a: Arc<str> = Arc::from(agent);
    agents.insert(Arc::clone(&a));
    a
}

pub(crate) struct Entry {
    pub id: Uuid,
    pub account_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub source_ip: Option<Address>,
    pub user_agent: Option<Arc<str>>,
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
            source_ip: self.source_ip.as_ref().map(ToString::to_string),
            user_agent: self.user_agent.as_deref().map(str::to_owned),
        }
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

/// The live (not revoked, not expired) sessions on `pages` (a part of the
/// warm-up's whole-table read).
pub(crate) async fn load_live_pages(
    conn: &mut AsyncPgConnection,
    pages: Pages,
    agents: &mut Agents,
) -> QueryResult<Vec<([u8; 32], Entry)>> {
    let rows: Vec<SessionRow> =
        diesel::sql_query(format!("{LIVE_COLUMNS} AND {}", pages.predicate()))
            .load(conn)
            .await?;
    Ok(decode(rows, agents))
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
    Ok(decode(rows, &mut Agents::new()))
}

fn decode(rows: Vec<SessionRow>, agents: &mut Agents) -> Vec<([u8; 32], Entry)> {
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
                    source_ip: r.source_ip.map(Address::from_text),
                    user_agent: r.user_agent.map(|a| shared(agents, a)),
                    last_seen_ms: AtomicI64::new(r.last_seen_at.timestamp_millis()),
                },
            ))
        })
        .collect()
}

/// Signs in: marks `challenge_id` consumed (at the session's creation),
/// inserts the session and announces it to the other backends, in one
/// statement (one round trip where three were).
pub(crate) async fn insert_consuming(
    conn: &mut AsyncPgConnection,
    challenge_id: Uuid,
    digest: &[u8; 32],
    e: &Entry,
) -> QueryResult<()> {
    galaxy_db::sql(
        "WITH consumed AS ( \
             UPDATE auth_challenges SET consumed_at = $4 WHERE id = $8), \
         announced AS (SELECT pg_notify($9, $1::text)) \
         INSERT INTO auth_sessions (id, account_id, token_hash, created_at, last_seen_at, expires_at, source_ip, user_agent) \
         SELECT $1, $2, $3, $4, $4, $5, $6::inet, $7 FROM announced",
    )
    .bind::<SqlUuid, _>(e.id)
    .bind::<SqlUuid, _>(e.account_id)
    .bind::<Text, _>(hex::encode(digest))
    .bind::<Timestamptz, _>(e.created_at)
    .bind::<Timestamptz, _>(e.expires_at)
    .bind::<Nullable<Text>, _>(e.source_ip.as_ref().map(ToString::to_string))
    .bind::<Nullable<Text>, _>(e.user_agent.as_deref())
    .bind::<SqlUuid, _>(challenge_id)
    // The payload of one key is the key (`galaxy_db::announce`).
    .bind::<Text, _>(CHANNEL)
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
