//! `CountryCounters` against a real PostgreSQL and the project's fixture.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{TempDir, fixture_geo};
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_db::{DatabaseUrl, Pool, PoolSettings, build_pool};
use galaxy_geo::{CountryCounters, counters_for};
use galaxy_testdb::{PrivateServer, TestDb};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const GB: &str = "81.2.69.142";
const SE: &str = "89.160.20.112";
const DE_V6: &str = "2001:db8::1";

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// The FK target: a plain `accounts` row.
async fn insert_account(conn: &mut AsyncPgConnection) -> Uuid {
    let id = Uuid::now_v7();
    diesel::sql_query("INSERT INTO accounts (id, email, display_name) VALUES ($1, $2, $3)")
        .bind::<SqlUuid, _>(id)
        .bind::<Text, _>(format!("geo-{}@example.com", id.simple()))
        .bind::<Text, _>("Geo Tester")
        .execute(conn)
        .await
        .expect("insert account");
    id
}

async fn counts(pool: &Pool, account: Uuid) -> Vec<(String, i64)> {
    let mut conn = pool.get().await.unwrap();
    counters_for(&mut conn, account)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.country, c.request_count))
        .collect()
}

/// A migrated database with one account, and counters over the fixture
/// (the database and the fixture's directory live as long as the guards).
async fn one_account() -> (TestDb, Pool, Uuid, TempDir, CountryCounters) {
    let db = TestDb::new();
    let pool = db.pool();
    let account = insert_account(&mut pool.get().await.unwrap()).await;
    let (dir, geo) = fixture_geo();
    (db, pool, account, dir, CountryCounters::new(geo))
}

/// `n` requests of the account from `addr`.
fn record_n(counters: &CountryCounters, account: Uuid, addr: &str, n: usize) {
    for _ in 0..n {
        counters.record(account, ip(addr));
    }
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

/// A pool whose every connection attempt is refused (nothing listens).
fn dead_pool() -> Pool {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = DatabaseUrl::parse(
        &format!("postgres://postgres@127.0.0.1:{port}/galaxy"),
        Duration::from_secs(5),
    )
    .unwrap();
    build_pool(
        &url,
        PoolSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(2),
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn n_requests_from_gb_count_n_after_flush() {
    let (_db, pool, account, _dir, counters) = one_account().await;

    record_n(&counters, account, GB, 25);
    assert_eq!(counters.pending(), 1);
    assert_eq!(counters.flush(&pool).await.unwrap(), 1);
    assert_eq!(counters.pending(), 0);
    assert_eq!(counts(&pool, account).await, pairs(&[("GB", 25)]));

    // Later flushes add to the row; other countries get rows of their own,
    // listed most requests first.
    record_n(&counters, account, SE, 30);
    record_n(&counters, account, GB, 5);
    counters.record(account, ip(DE_V6));
    assert_eq!(counters.flush(&pool).await.unwrap(), 3);
    assert_eq!(
        counts(&pool, account).await,
        pairs(&[("GB", 30), ("SE", 30), ("DE", 1)])
    );
    // Nothing new: nothing written.
    assert_eq!(counters.flush(&pool).await.unwrap(), 0);

    let mut conn = pool.get().await.unwrap();
    let rows = counters_for(&mut conn, account).await.unwrap();
    assert!(rows.iter().all(|r| r.first_seen_at <= r.last_seen_at));
    let gb = rows.iter().find(|r| r.country == "GB").unwrap();
    assert!(gb.first_seen_at < gb.last_seen_at, "{gb:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn private_unknown_and_missing_addresses_count_nothing() {
    let (_db, pool, account, _dir, counters) = one_account().await;

    for addr in galaxy_geo::fixture::NO_COUNTRY {
        counters.record(account, ip(addr));
    }
    counters.record(account, None);
    assert_eq!(counters.flush(&pool).await.unwrap(), 0);
    assert_eq!(counters.pending(), 0);
    assert!(counts(&pool, account).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_records_sum_exactly_while_flushing() {
    let db = TestDb::new();
    let pool = db.pool();
    let mut accounts = Vec::new();
    {
        let mut conn = pool.get().await.unwrap();
        for _ in 0..4 {
            accounts.push(insert_account(&mut conn).await);
        }
    }
    let (_dir, geo) = fixture_geo();
    let counters = CountryCounters::new(geo);

    // A flusher racing the writers: counts taken mid-way must not be lost
    // or counted twice.
    let stop = CancellationToken::new();
    let flusher = counters.spawn_flusher(pool.clone(), Duration::from_millis(5), stop.clone());

    const TASKS: usize = 16;
    const PER_TASK: usize = 2_000;
    let mut writers = Vec::new();
    for t in 0..TASKS {
        let counters = counters.clone();
        let accounts = accounts.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let account = accounts[(t + i) % accounts.len()];
                let addr = if i % 2 == 0 { GB } else { DE_V6 };
                counters.record(account, ip(addr));
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.cancel();
    flusher.await.unwrap();
    assert_eq!(counters.pending(), 0);

    let mut total = 0;
    for &account in &accounts {
        let rows = counts(&pool, account).await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        // Each task sends alternating GB / DE, rotating over the accounts,
        // so every account sees exactly half of its requests from each.
        let per_account = i64::try_from(TASKS * PER_TASK / accounts.len()).unwrap();
        assert_eq!(
            rows,
            pairs(&[("DE", per_account / 2), ("GB", per_account / 2)])
        );
        total += rows.iter().map(|r| r.1).sum::<i64>();
    }
    assert_eq!(total, i64::try_from(TASKS * PER_TASK).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_flush_keeps_the_counts_for_the_next_one() {
    let (_db, pool, account, _dir, counters) = one_account().await;

    record_n(&counters, account, GB, 7);
    let dead = dead_pool();
    assert!(counters.flush(&dead).await.is_err());
    assert_eq!(counters.pending(), 1);
    // Counted while the database was away: added to what was kept.
    record_n(&counters, account, GB, 3);
    assert!(counters.flush(&dead).await.is_err());
    assert_eq!(counters.flush(&pool).await.unwrap(), 1);
    assert_eq!(counts(&pool, account).await, pairs(&[("GB", 10)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_survive_a_postgres_outage() {
    let server = PrivateServer::start();
    let url = DatabaseUrl::parse(
        &format!("{}?search_path=backend", server.admin_url()),
        Duration::from_secs(10),
    )
    .unwrap();
    galaxy_db::migrate(&url)
        .await
        .expect("migrate the private server");
    let pool = build_pool(
        &url,
        PoolSettings {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(3),
        },
    );
    let account = insert_account(&mut pool.get().await.unwrap()).await;
    let (_dir, geo) = fixture_geo();
    let counters = CountryCounters::new(geo);

    record_n(&counters, account, GB, 4);
    assert_eq!(counters.flush(&pool).await.unwrap(), 1);

    server.stop();
    record_n(&counters, account, GB, 6);
    counters.record(account, ip(SE));
    assert!(counters.flush(&pool).await.is_err());
    assert_eq!(counters.pending(), 2);

    server.start_again();
    let mut written = None;
    for _ in 0..50 {
        // The pool may hand out a connection broken by the restart once.
        match counters.flush(&pool).await {
            Ok(rows) => {
                written = Some(rows);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(written, Some(2));
    assert_eq!(
        counts(&pool, account).await,
        pairs(&[("GB", 10), ("SE", 1)])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_statement_writes_many_accounts() {
    let db = TestDb::new();
    let pool = db.pool();
    let mut conn = pool.get().await.unwrap();
    // A statement-level trigger counts INSERT statements on the table.
    for sql in [
        "CREATE TABLE geo_test_statements (n bigserial PRIMARY KEY)",
        "CREATE FUNCTION geo_test_count() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN INSERT INTO geo_test_statements DEFAULT VALUES; RETURN NULL; END $$",
        "CREATE TRIGGER geo_test_count AFTER INSERT ON user_country_counters \
         FOR EACH STATEMENT EXECUTE FUNCTION geo_test_count()",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    let mut accounts = Vec::new();
    for _ in 0..40 {
        accounts.push(insert_account(&mut conn).await);
    }
    let (_dir, geo) = fixture_geo();
    let counters = CountryCounters::new(geo);
    for (i, &account) in accounts.iter().enumerate() {
        for _ in 0..=i {
            counters.record(account, ip(GB));
        }
        counters.record(account, ip(SE));
    }
    assert_eq!(counters.flush(&pool).await.unwrap(), 80);
    assert_eq!(statements(&mut conn).await, 1);

    // The second flush updates existing rows: still one statement.
    for &account in &accounts {
        counters.record(account, ip(SE));
    }
    assert_eq!(counters.flush(&pool).await.unwrap(), 40);
    assert_eq!(statements(&mut conn).await, 2);
    for (i, &account) in accounts.iter().enumerate() {
        let mut want = vec![
            ("GB".to_owned(), i64::try_from(i).unwrap() + 1),
            ("SE".to_owned(), 2),
        ];
        want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(counts(&pool, account).await, want);
    }
}

async fn statements(conn: &mut AsyncPgConnection) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM geo_test_statements")
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_account_does_not_block_the_batch() {
    let (_db, pool, account, _dir, counters) = one_account().await;
    let stray = Uuid::now_v7();
    counters.record(stray, ip(GB));
    counters.record(account, ip(GB));
    assert_eq!(counters.flush(&pool).await.unwrap(), 1);
    assert_eq!(counters.pending(), 0);
    assert_eq!(counts(&pool, account).await, pairs(&[("GB", 1)]));
    assert!(counts(&pool, stray).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_flusher_writes_periodically_and_at_shutdown() {
    let (_db, pool, account, _dir, counters) = one_account().await;
    let shutdown = CancellationToken::new();
    let flusher = counters.spawn_flusher(pool.clone(), Duration::from_millis(50), shutdown.clone());

    record_n(&counters, account, GB, 3);
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = counts(&pool, account).await;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, pairs(&[("GB", 3)]), "the periodic flush did not run");

    // Recorded just before shutdown: the final flush writes it even if no
    // periodic one comes first.
    counters.record(account, ip(GB));
    shutdown.cancel();
    flusher.await.unwrap();
    assert_eq!(counts(&pool, account).await, pairs(&[("GB", 4)]));
}
