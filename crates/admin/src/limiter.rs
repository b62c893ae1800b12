//! Failed-login limits counted in PostgreSQL (so they hold across several
//! backends, SYSTEM.md §12) and reserved BEFORE the password is hashed, and
//! the bound on concurrent argon2 hashes.
//!
//! [`reserve`] runs in one transaction: it takes advisory locks on the
//! source IP and on the username (always in that order), counts the
//! attempts of both inside the window and, when both are under their
//! limits, writes an attempt row. Parallel logins for one key therefore
//! pass one at a time, and at most `limit` of them reach the hash. The row
//! stays when the password is wrong (a failure counted) and is deleted by
//! [`release`] when it is right or was never checked: the limits count
//! failed logins (docs/decisions.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::sql_types::{BigInt, Double, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_core::env::RateLimit;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// The two limits of `BACKEND_ADMIN_LOGIN_LIMIT`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginLimits {
    pub per_ip: RateLimit,
    pub per_username: RateLimit,
}

impl LoginLimits {
    /// Per username it is half the per-address count (at least 1).
    pub(crate) fn from_setting(limit: RateLimit) -> Self {
        Self {
            per_ip: limit,
            per_username: RateLimit {
                count: (limit.count / 2).max(1),
                window: limit.window,
            },
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Window {
    #[diesel(sql_type = BigInt)]
    n: i64,
    /// Seconds until the oldest counted attempt leaves the window.
    #[diesel(sql_type = BigInt)]
    frees_in: i64,
}

async fn lock(conn: &mut AsyncPgConnection, key: &str) -> diesel::QueryResult<()> {
    galaxy_db::sql("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(key)
        .execute(conn)
        .await
        .map(drop)
}

async fn window(
    conn: &mut AsyncPgConnection,
    column: &'static str,
    key: &str,
    limit: RateLimit,
) -> diesel::QueryResult<Result<(), u64>> {
    // `column` is one of two fixed names, never input.
    let w: Window = galaxy_db::sql(format!(
        "SELECT count(*) AS n, COALESCE(ceil(extract(epoch FROM \
         min(attempted_at) + make_interval(secs => $2) - clock_timestamp()))::int8, 1) AS frees_in \
         FROM admin_login_attempts \
         WHERE {column} = $1 AND attempted_at > clock_timestamp() - make_interval(secs => $2)"
    ))
    .bind::<Text, _>(key)
    .bind::<Double, _>(limit.window.as_secs_f64())
    .get_result(conn)
    .await?;
    if w.n < i64::from(limit.count) {
        Ok(Ok(()))
    } else {
        Ok(Err(u64::try_from(w.frees_in).unwrap_or(1).max(1)))
    }
}

/// Reserves one attempt for (`ip`, `username`): `Ok(Ok(id))` when both are
/// under their limits (the attempt is written), `Ok(Err(seconds))` when
/// one is not. Must run inside a transaction (the locks end with it).
pub(crate) async fn reserve(
    conn: &mut AsyncPgConnection,
    ip: &str,
    username: &str,
    limits: LoginLimits,
) -> diesel::QueryResult<Result<Uuid, u64>> {
    lock(conn, &format!("admin_login_ip:{ip}")).await?;
    lock(conn, &format!("admin_login_user:{username}")).await?;
    let by_ip = window(conn, "source_ip", ip, limits.per_ip).await?;
    let by_name = window(conn, "username", username, limits.per_username).await?;
    if let Some(secs) = by_ip.err().into_iter().chain(by_name.err()).max() {
        return Ok(Err(secs));
    }
    // Attempts that left the window count for nothing: prune a few.
    let longest = limits.per_ip.window.max(limits.per_username.window);
    galaxy_db::sql(
        "DELETE FROM admin_login_attempts WHERE id IN (SELECT id FROM admin_login_attempts \
         WHERE attempted_at < clock_timestamp() - make_interval(secs => $1) LIMIT 100)",
    )
    .bind::<Double, _>(longest.as_secs_f64())
    .execute(conn)
    .await?;
    let id = galaxy_core::new_id();
    galaxy_db::sql(
        "INSERT INTO admin_login_attempts (id, source_ip, username, attempted_at) \
         VALUES ($1, $2, $3, clock_timestamp())",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(ip)
    .bind::<Text, _>(username)
    .execute(conn)
    .await?;
    Ok(Ok(id))
}

/// Gives a reservation back: the login succeeded, or its password was
/// never checked.
pub(crate) async fn release(conn: &mut AsyncPgConnection, id: Uuid) -> diesel::QueryResult<()> {
    galaxy_db::sql("DELETE FROM admin_login_attempts WHERE id = $1")
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await
        .map(drop)
}

/// Bounds the argon2 hashes running at once (each holds about 19 MiB and a
/// core): `concurrency` run, up to `4 × concurrency` wait, the others are
/// refused at once ([`HashGate::run`] answers `None`).
pub struct HashGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Decrements the waiting count when a waiter leaves (also when its
/// request is dropped while it waits).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HashGate {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            waiting: AtomicUsize::new(0),
            max_waiting: concurrency.saturating_mul(4),
        }
    }

    /// Runs `f` on the blocking pool once a permit is free; `None` when the
    /// queue is full. The permit is held until `f` returns, even if the
    /// caller stops waiting, so the bound is on hashes actually running.
    pub async fn run<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return None;
                }
                let _waiting = Waiting(&self.waiting);
                Arc::clone(&self.permits).acquire_owned().await.ok()?
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn the_gate_bounds_running_hashes_and_its_queue() {
        let gate = Arc::new(HashGate::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    gate.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .is_some()
                })
            })
            .collect();
        let mut ran = 0;
        for t in tasks {
            ran += usize::from(t.await.unwrap());
        }
        assert_eq!(
            AtomicUsize::load(&peak, Ordering::SeqCst),
            2,
            "at most 2 at once"
        );
        // 2 running + 8 waiting; the rest refused.
        assert_eq!(ran, 10);
        assert_eq!(AtomicUsize::load(&gate.waiting, Ordering::SeqCst), 0);
    }

    #[test]
    fn per_username_is_half() {
        let l = LoginLimits::from_setting("10/15m".parse().unwrap());
        assert_eq!((l.per_ip.count, l.per_username.count), (10, 5));
        let l = LoginLimits::from_setting("1/15m".parse().unwrap());
        assert_eq!(l.per_username.count, 1);
    }
}
