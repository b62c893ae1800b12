//! Warm start (the performance issue's `warm start`): process start to
//! `GET /readyz` 200 with `BENCH_ACCOUNTS` accounts and as many live
//! sessions, and the process's peak RSS (`VmHWM`, read just before
//! SIGTERM), beside a raw `COPY (SELECT …) TO STDOUT` of the same columns
//! the warm-up reads, through `psql` into `/dev/null`, in the same run.
//! Rounds alternate the two; medians are reported and the ratio printed
//! last.
//!
//! The rows are written by SQL (`generate_series`) in chunks, then
//! `VACUUM ANALYZE`d so neither side pays for setting hint bits; one
//! untimed COPY warms the page cache before the rounds.
//!
//! ```text
//! cargo build --release -p galaxy-backend
//! cargo bench -p galaxy-integration --bench warm
//! ```
//! `BENCH_ACCOUNTS` (default 1,000,000; one live session each),
//! `BENCH_ROUNDS` (default 3).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate figures")]
// Printing the figures is this program's whole output.
#![allow(clippy::print_stdout)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use galaxy_integration::BackendBuilder;
use galaxy_integration::load::env_or;
use galaxy_testdb::TestDb;

/// Rows per seeding statement: each stays far below the test pool's
/// statement timeout.
const CHUNK: usize = 100_000;

/// What `PgUserService::warm` reads.
const ACCOUNTS_COPY: &str = "COPY (SELECT id, email, display_name, declared_country, status, \
     created_at FROM accounts) TO STDOUT";

/// What `PgAuthService::warm` reads.
const SESSIONS_COPY: &str = "COPY (SELECT id, account_id, token_hash, created_at, last_seen_at, \
     expires_at, host(source_ip), user_agent FROM auth_sessions \
     WHERE revoked_at IS NULL AND expires_at > now()) TO STDOUT";

/// Runs `sql` (with `$1`, `$2` the bounds of a chunk of row numbers) over
/// `0..n` in chunks of [`CHUNK`].
async fn in_chunks(conn: &mut diesel_async::AsyncPgConnection, n: usize, sql: &str, what: &str) {
    let mut from = 0;
    while from < n {
        let to = (from + CHUNK).min(n);
        diesel::sql_query(sql)
            .bind::<BigInt, _>(i64::try_from(from).unwrap())
            .bind::<BigInt, _>(i64::try_from(to).unwrap())
            .execute(conn)
            .await
            .expect(what);
        from = to;
    }
}

/// `n` accounts (a few blocked or deleted, most with a declared country)
/// and one live session each, with the address and user-agent spread a
/// real table would have: many addresses, few agents.
async fn seed(db: &TestDb, n: usize) {
    let mut conn = db.pool().get().await.expect("a connection");
    in_chunks(
        &mut conn,
        n,
        "INSERT INTO accounts (id, email, display_name, declared_country, status, \
                                   created_at, updated_at, deleted_at) \
             SELECT gen_random_uuid(), 'player-' || g || '@example.test', \
                    'Player ' || substr(md5(g::text), 1, 6), \
                    (ARRAY['DE', 'FR', 'GB', 'US', 'PL', 'BR', NULL])[1 + g % 7], \
                    CASE WHEN g % 97 = 0 THEN 'deleted' WHEN g % 89 = 0 THEN 'blocked' \
                         ELSE 'active' END, \
                    now() - make_interval(secs => g), now() - make_interval(secs => g), \
                    CASE WHEN g % 97 = 0 THEN now() END \
             FROM generate_series($1, $2 - 1) g",
        "seed accounts",
    )
    .await;
    diesel::sql_query(
        "CREATE TEMP TABLE bench_ids AS \
         SELECT id, created_at, row_number() OVER () AS g FROM accounts",
    )
    .execute(&mut conn)
    .await
    .expect("number the accounts");
    in_chunks(&mut conn, n, "INSERT INTO auth_sessions (id, account_id, token_hash, created_at, last_seen_at, \
                                        expires_at, source_ip, user_agent) \
             SELECT gen_random_uuid(), id, encode(sha256(convert_to('bench-' || g, 'UTF8')), 'hex'), \
                    created_at, now() - make_interval(secs => g % 86400), \
                    now() + interval '30 days' - make_interval(secs => g), \
                    ('10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256)::inet, \
                    (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', \
                           'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36', \
                           'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1', \
                           'galaxy-client/1.4.2', NULL])[1 + g % 5] \
             FROM bench_ids WHERE g > $1 AND g <= $2", "seed sessions").await;
    for sql in ["VACUUM ANALYZE accounts", "VACUUM ANALYZE auth_sessions"] {
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .expect("vacuum");
    }
}

/// Both COPYs, one after the other on one connection, read to the end.
fn copy_out(db: &TestDb) -> Duration {
    let started = Instant::now();
    let status = Command::new("psql")
        .arg(db.url().driver_url())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-c", ACCOUNTS_COPY, "-c", SESSIONS_COPY])
        .stdout(Stdio::null())
        .status()
        .expect("run psql");
    assert!(status.success(), "psql COPY failed");
    started.elapsed()
}

/// The running backend child of this process (`/proc/<us>/task/*/children`).
fn backend_pid() -> u32 {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let children = task.expect("task").path().join("children");
        if let Ok(text) = std::fs::read_to_string(children) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids.into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "galaxy-backend")
        })
        .expect("the backend's pid")
}

/// `field` (`VmHWM`, `VmRSS`) of `pid`, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect(field);
    kib / 1024.0
}

/// Start to ready, the peak RSS at ready and the RSS then.
async fn warm_start(db: &TestDb) -> (Duration, f64, f64) {
    let started = Instant::now();
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("RUST_LOG", "warn")
        .spawn();
    let limit = Duration::from_secs(300);
    while backend.status_of("/readyz").await != Some(200) {
        assert!(
            started.elapsed() < limit,
            "not ready within {limit:?}:\n{}",
            backend.dump()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready = started.elapsed();
    let pid = backend_pid();
    let (peak, now) = (status_mib(pid, "VmHWM"), status_mib(pid, "VmRSS"));
    let status = backend.terminate(Duration::from_secs(30));
    assert!(status.success(), "backend exit: {status}");
    (ready, peak, now)
}

fn median<T: PartialOrd + Copy>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v[v.len() / 2]
}

async fn run() {
    let accounts = env_or("BENCH_ACCOUNTS", 1_000_000);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let db = TestDb::new();
    let seeding = Instant::now();
    seed(&db, accounts).await;
    println!(
        "seeded {accounts} accounts and {accounts} live sessions in {:.1?}",
        seeding.elapsed()
    );
    copy_out(&db);

    let (mut ready, mut rss, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (r, m, now) = warm_start(&db).await;
        let c = copy_out(&db);
        println!(
            "round {round}: ready {:.2} s (peak RSS {m:.0} MiB, {now:.0} MiB at ready), COPY {:.2} s",
            r.as_secs_f64(),
            c.as_secs_f64()
        );
        ready.push(r.as_secs_f64());
        rss.push(m);
        copy.push(c.as_secs_f64());
    }
    let (r, m, c) = (median(&ready), median(&rss), median(&copy));
    println!("warm-start benchmark: {accounts} accounts + {accounts} sessions, median of {rounds}");
    println!(
        "  start to /readyz 200:    {r:6.2} s  (runs: {ready:.2?}), peak RSS {m:.0} MiB (runs: {rss:.0?})"
    );
    println!("  COPY of the same rows:   {c:6.2} s  (runs: {copy:.2?})");
    println!("ratio ready / COPY: {:.2}", r / c);
}

#[tokio::main]
async fn main() {
    run().await;
}
