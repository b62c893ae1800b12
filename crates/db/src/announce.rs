//! Change announcements between backends sharing a database (SYSTEM.md §12).
//!
//! Every module that caches a table writes through to its own cache after a
//! commit; the other backends learn of the change from an announcement: the
//! writing transaction calls [`announce`] (`pg_notify`, so it is delivered
//! only if the transaction commits), and every backend's [`Listener`] — one
//! dedicated connection outside the pool, LISTENing on every cache's
//! channel — asks the cache to reload the announced keys from the database.
//!
//! A reload reads the committed row, so applying announcements one batch at
//! a time, in order, converges on what the database holds; a backend's own
//! announcements come back to it too, which repairs the one race a write
//! through can lose (a peer's older value read just before this backend's
//! commit and applied just after it).
//!
//! Nothing is announced while the listener is disconnected, so a reconnect
//! reloads every cache whole before readiness comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::{FutureExt, StreamExt};
use galaxy_core::ReadyFlag;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dsn::DatabaseUrl;
use crate::pool::establish;

/// The payload meaning "reload everything" (too many keys for one payload).
pub const EVERYTHING: &str = "*";

/// The listener connection's `application_name`.
pub const APPLICATION_NAME: &str = "galaxy-change-listener";

/// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

/// Announces that `keys` changed on `channel`, delivered on commit of the
/// surrounding transaction (at once outside one).
pub async fn announce<K: std::borrow::Borrow<Uuid>>(
    conn: &mut AsyncPgConnection,
    channel: &'static str,
    ids: impl IntoIterator<Item = K>,
) -> diesel::QueryResult<()> {
    let payload = payload(ids.into_iter().map(|id| *id.borrow()));
    if payload.is_empty() {
        return Ok(());
    }
    crate::sql("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(channel)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await
        .map(|_| ())
}

fn payload<K: Display>(keys: impl IntoIterator<Item = K>) -> String {
    let mut out = String::new();
    for key in keys {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&key.to_string());
        if out.len() > MAX_PAYLOAD {
            return EVERYTHING.to_owned();
        }
    }
    out
}

/// A cache that applies its peers' changes. Implemented by each module;
/// every key is the id of a row the module caches.
#[async_trait::async_trait]
pub trait Coherent: Send + Sync {
    /// The channel its module announces on (a lower-case SQL identifier).
    fn channel(&self) -> &'static str;

    /// Reads these rows from the database and applies what it finds:
    /// present rows replace the cached ones, absent ones are removed.
    async fn reload(&self, ids: &[Uuid]) -> Result<(), String>;

    /// Reads the whole table again (after the listener was disconnected).
    async fn reload_all(&self) -> Result<(), String>;
}

/// Tuning of the listener.
#[derive(Clone, Copy, Debug)]
pub struct ListenerSettings {
    /// How long to wait before reconnecting after the connection was lost.
    pub retry: Duration,
    /// How often an idle connection is checked, so a silently dead one is
    /// noticed (an ended session is noticed at once).
    pub ping: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            retry: Duration::from_secs(1),
            ping: Duration::from_secs(5),
        }
    }
}

/// A listener connected and LISTENing, whose announcements wait until
/// [`Listener::run`]. Open it before the caches warm up: a change committed
/// after their snapshot is then announced to it and applied after them.
pub struct Listener {
    url: DatabaseUrl,
    caches: Vec<Arc<dyn Coherent>>,
    settings: ListenerSettings,
    conn: Option<AsyncPgConnection>,
}

impl Listener {
    /// Connects and LISTENs on every cache's channel.
    pub async fn open(
        url: DatabaseUrl,
        caches: Vec<Arc<dyn Coherent>>,
        settings: ListenerSettings,
    ) -> Result<Self, String> {
        let mut listener = Self {
            url,
            caches,
            settings,
            conn: None,
        };
        listener.conn = Some(listener.connect().await?);
        Ok(listener)
    }

    async fn connect(&self) -> Result<AsyncPgConnection, String> {
        let mut conn = establish(&self.url).await.map_err(|e| e.to_string())?;
        // Named, so an operator (or a test) can tell it in pg_stat_activity.
        diesel::sql_query(format!("SET application_name = '{APPLICATION_NAME}'"))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut channels = BTreeSet::new();
        for cache in &self.caches {
            channels.insert(cache.channel());
        }
        for channel in channels {
            // A channel is a constant identifier of ours, never input.
            diesel::sql_query(format!("LISTEN {channel}"))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(conn)
    }

    /// Applies announcements until `shutdown`; `coherent` is up while the
    /// listener is connected and every cache has caught up.
    pub fn run(mut self, coherent: ReadyFlag, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Some(conn) = self.conn.as_mut() {
                    coherent.set_ready();
                    let ended = tokio::select! {
                        () = shutdown.cancelled() => None,
                        e = listen(conn, &self.caches, self.settings.ping) => Some(e),
                    };
                    coherent.set_not_ready();
                    let Some(error) = ended else { break };
                    tracing::warn!(error = %error, "change listener lost; caches reload when it is back");
                    self.conn = None;
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.settings.retry) => {}
                }
                match self.reconnect().await {
                    Ok(conn) => {
                        tracing::info!("change listener back; caches reloaded");
                        self.conn = Some(conn);
                    }
                    Err(e) => tracing::debug!(error = %e, "change listener cannot reconnect yet"),
                }
            }
        })
    }

    /// LISTENs again first, then reloads every cache whole: what changed
    /// while disconnected is in the reload, what changes after it is
    /// announced.
    async fn reconnect(&self) -> Result<AsyncPgConnection, String> {
        let conn = self.connect().await?;
        for cache in &self.caches {
            cache.reload_all().await?;
        }
        Ok(conn)
    }
}

/// Applies announcements until the connection fails; returns why.
async fn listen(
    conn: &mut AsyncPgConnection,
    caches: &[Arc<dyn Coherent>],
    ping: Duration,
) -> String {
    loop {
        let batch = {
            let mut stream = std::pin::pin!(conn.notifications_stream());
            let first = tokio::select! {
                n = stream.next() => n,
                () = tokio::time::sleep(ping) => None,
            };
            match first {
                None => Batch::default(),
                Some(Err(e)) => return e.to_string(),
                Some(Ok(n)) => {
                    let mut batch = Batch::default();
                    batch.add(&n.channel, &n.payload);
                    // Everything already queued goes into the same reload.
                    while let Some(Some(next)) = stream.next().now_or_never() {
                        match next {
                            Ok(n) => batch.add(&n.channel, &n.payload),
                            Err(e) => return e.to_string(),
                        }
                    }
                    batch
                }
            }
        };
        if batch.0.is_empty() {
            if let Err(e) = crate::leader::ping(conn, ping).await {
                return e;
            }
            continue;
        }
        if let Err(e) = batch.apply(caches).await {
            return format!("reload failed: {e}");
        }
    }
}

/// Announced ids by channel; `None` means everything.
#[derive(Default)]
struct Batch(BTreeMap<String, Option<BTreeSet<Uuid>>>);

impl Batch {
    fn add(&mut self, channel: &str, payload: &str) {
        let entry = self
            .0
            .entry(channel.to_owned())
            .or_insert_with(|| Some(BTreeSet::new()));
        if payload == EVERYTHING {
            *entry = None;
        } else if let Some(keys) = entry {
            // Not an id: not ours to reload (a payload of another version).
            keys.extend(payload.split(',').filter_map(|k| k.parse::<Uuid>().ok()));
        }
    }

    async fn apply(self, caches: &[Arc<dyn Coherent>]) -> Result<(), String> {
        for (channel, keys) in self.0 {
            let keys: Option<Vec<Uuid>> = keys.map(|k| k.into_iter().collect());
            for cache in caches.iter().filter(|c| c.channel() == channel) {
                match &keys {
                    None => cache.reload_all().await?,
                    Some(keys) => cache.reload(keys).await?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_too_long_for_notify_asks_for_everything() {
        assert_eq!(payload(["a", "b"]), "a,b");
        assert_eq!(payload(Vec::<String>::new()), "");
        let many: Vec<String> = (0..1_000).map(|i| format!("{i:020}")).collect();
        assert_eq!(payload(&many), EVERYTHING);
    }

    #[test]
    fn a_batch_merges_keys_and_everything_wins() {
        let [a, b_, c] = [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)];
        let mut b = Batch::default();
        b.add("s", &format!("{a},{b_}"));
        b.add("s", &format!("{b_},{c},not-an-id"));
        b.add("t", &a.to_string());
        b.add("t", EVERYTHING);
        b.add("t", &c.to_string());
        assert_eq!(
            b.0["s"]
                .as_ref()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [a, b_, c]
        );
        assert!(b.0["t"].is_none());
    }
}
