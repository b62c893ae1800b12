use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use galaxy_db::{DbError, Pool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::reader::GeoIp;
use crate::store::{PendingCount, upsert_counts};

/// Independent locks, so request threads recording for different accounts
/// rarely meet on the same mutex; each critical section is one map update.
const SHARDS: usize = 16;

/// Where a request came from: its address as recorded on the request path
/// (looked up at the next flush, off that path), or its country for counts
/// a failed flush put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    Address(IpAddr),
    Country([u8; 2]),
}

type Key = (Uuid, Origin);

#[derive(Debug, Clone, Copy)]
struct Tally {
    requests: u64,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.requests = self.requests.saturating_add(other.requests);
        self.first_seen_at = self.first_seen_at.min(other.first_seen_at);
        self.last_seen_at = self.last_seen_at.max(other.last_seen_at);
    }
}

struct Inner {
    geo: GeoIp,
    shards: Box<[Mutex<HashMap<Key, Tally>>]>,
}

/// Per-(account, country) request counts, aggregated in memory and written
/// to `user_country_counters` in batches; cheap to clone.
#[derive(Clone)]
pub struct CountryCounters {
    inner: Arc<Inner>,
}

impl CountryCounters {
    pub fn new(geo: GeoIp) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        Self {
            inner: Arc::new(Inner { geo, shards }),
        }
    }

    pub fn geo(&self) -> &GeoIp {
        &self.inner.geo
    }

    /// Counts one authenticated request. Runs on the request path, so it
    /// never fails and never waits on anything but a short in-memory lock;
    /// the address's country is looked up when the counts are flushed.
    pub fn record(&self, account_id: Uuid, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let now = Utc::now();
        let seen = Tally {
            requests: 1,
            first_seen_at: now,
            last_seen_at: now,
        };
        self.shard(account_id)
            .entry((account_id, Origin::Address(ip)))
            .and_modify(|t| t.absorb(seen))
            .or_insert(seen);
    }

    /// How many (account, address or country) entries wait for the next
    /// flush.
    pub fn pending(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Writes everything aggregated since the last flush in one upsert and
    /// returns the rows written. When the write fails (or this future is
    /// dropped half-way) the counts go back into memory for the next flush.
    pub async fn flush(&self, pool: &Pool) -> Result<usize, DbError> {
        let mut batch = Batch {
            counters: self,
            rows: self.take(),
            written: false,
        };
        if batch.rows.is_empty() {
            return Ok(0);
        }
        let mut conn = pool.get().await?;
        let rows = upsert_counts(&mut conn, &mut batch.rows).await?;
        batch.written = true;
        Ok(rows)
    }

    /// Flushes every `every` until `shutdown`, then once more. A flush in
    /// progress is never abandoned for shutdown, so nothing taken is lost.
    pub fn spawn_flusher(
        &self,
        pool: Pool,
        every: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let counters = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; nothing has been counted yet.
            ticker.tick().await;
            let mut failures = 0u32;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                counters.flush_logged(&pool, &mut failures).await;
            }
            match counters.flush(&pool).await {
                Ok(rows) => tracing::info!(rows, "country counters flushed at shutdown"),
                Err(error) => tracing::warn!(
                    %error,
                    pending = counters.pending(),
                    "country counters lost at shutdown: the final flush failed"
                ),
            }
        })
    }

    /// One periodic flush. A database outage would fail every second, so it
    /// is logged when it starts, once a minute while it lasts, and when it ends.
    async fn flush_logged(&self, pool: &Pool, failures: &mut u32) {
        match self.flush(pool).await {
            Ok(rows) => {
                if *failures > 0 {
                    tracing::info!(
                        rows,
                        failed_flushes = *failures,
                        "country counters flushed again"
                    );
                } else if rows > 0 {
                    tracing::debug!(rows, "country counters flushed");
                }
                *failures = 0;
            }
            Err(error) => {
                if failures.is_multiple_of(60) {
                    tracing::warn!(
                        %error,
                        failed_flushes = *failures + 1,
                        pending = self.pending(),
                        "country counters not flushed; kept for the next try"
                    );
                }
                *failures = failures.saturating_add(1);
            }
        }
    }

    fn shard(&self, account_id: Uuid) -> MutexGuard<'_, HashMap<Key, Tally>> {
        let (hi, lo) = account_id.as_u64_pair();
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the remainder is below SHARDS, itself a usize"
        )]
        let index = ((hi ^ lo) % SHARDS as u64) as usize;
        lock(&self.inner.shards[index])
    }

    /// Everything counted so far, by (account, country): addresses are
    /// looked up here; one without a country (private, unknown, a lookup
    /// error logged at debug) counts nothing.
    fn take(&self) -> Vec<PendingCount> {
        let mut by_country: HashMap<(Uuid, [u8; 2]), Tally> = HashMap::new();
        for shard in &self.inner.shards {
            let taken = std::mem::take(&mut *lock(shard));
            for ((account_id, origin), tally) in taken {
                let country = match origin {
                    Origin::Country(country) => country,
                    Origin::Address(ip) => match self.inner.geo.country_code(ip) {
                        Ok(Some(country)) => country,
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::debug!(%error, "GeoIP lookup failed; requests not counted");
                            continue;
                        }
                    },
                };
                by_country
                    .entry((account_id, country))
                    .and_modify(|t| t.absorb(tally))
                    .or_insert(tally);
            }
        }
        by_country
            .into_iter()
            .map(|((account_id, country), t)| PendingCount {
                account_id,
                country: String::from_utf8_lossy(&country).into_owned(),
                request_count: i64::try_from(t.requests).unwrap_or(i64::MAX),
                first_seen_at: t.first_seen_at,
                last_seen_at: t.last_seen_at,
            })
            .collect()
    }

    fn put_back(&self, rows: Vec<PendingCount>) {
        for row in rows {
            let Ok(country) = <[u8; 2]>::try_from(row.country.as_bytes()) else {
                continue;
            };
            let tally = Tally {
                requests: u64::try_from(row.request_count).unwrap_or(0),
                first_seen_at: row.first_seen_at,
                last_seen_at: row.last_seen_at,
            };
            self.shard(row.account_id)
                .entry((row.account_id, Origin::Country(country)))
                .and_modify(|t| t.absorb(tally))
                .or_insert(tally);
        }
    }
}

impl std::fmt::Debug for CountryCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountryCounters")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

/// Rows taken out for one flush; returned to memory on drop unless written.
struct Batch<'a> {
    counters: &'a CountryCounters,
    rows: Vec<PendingCount>,
    written: bool,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.written {
            self.counters.put_back(std::mem::take(&mut self.rows));
        }
    }
}

/// A panic while a shard was held cannot leave a map half-updated in a way
/// that matters for counting, so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
