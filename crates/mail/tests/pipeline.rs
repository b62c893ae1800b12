//! The worker's pipeline in a backlog: the next batch is claimed while the
//! current one is sent, and outcomes are written while sending goes on.
//! What that must not change: a shutdown leaves no row leased, and a crash
//! re-sends claimed rows only once their lease has ended.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use diesel::sql_types::{Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use galaxy_db::Pool;
use galaxy_mail::TlsMode;
use galaxy_testdb::TestDb;
use galaxy_testsmtp::SmtpServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A server that holds the `at`-th message until the test lets it go.
struct Gate {
    reached: AtomicBool,
    open: AtomicBool,
    seen: AtomicUsize,
}

fn server_gated_at(at: usize) -> (SmtpServer, Arc<Gate>) {
    let gate = Arc::new(Gate {
        reached: AtomicBool::new(false),
        open: AtomicBool::new(false),
        seen: AtomicUsize::new(0),
    });
    let g = Arc::clone(&gate);
    let server = SmtpServer::builder()
        .threads(8)
        .on_message(move |_| {
            if g.seen.fetch_add(1, Ordering::SeqCst) + 1 == at {
                g.reached.store(true, Ordering::SeqCst);
                let until = Instant::now() + Duration::from_secs(20);
                while !g.open.load(Ordering::SeqCst) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
        .start()
        .unwrap();
    (server, gate)
}

async fn open_attempts(pool: &Pool) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut c = pool.get().await.unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM mail_attempts WHERE outcome IS NULL")
        .get_result::<N>(&mut c)
        .await
        .unwrap()
        .n
}

/// Waits until the server holds the 15th message, the 14 before it are
/// recorded and the batch after the one being sent is claimed: open tries
/// are rows 15–20 of batch 2 and the 10 rows of batch 3.
async fn wait_for_claim_ahead(pool: &Pool, gate: &Gate) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gate.reached.load(Ordering::SeqCst) || open_attempts(pool).await != 16 {
        assert!(Instant::now() < deadline, "no batch claimed ahead");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(open_attempts(pool).await, 16, "one batch ahead, no more");
}

fn backlog_worker() -> galaxy_mail::WorkerSettings {
    let mut s = fast_worker();
    s.batch_size = 10;
    s.record_every = 3;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_with_a_batch_claimed_ahead_leaves_no_row_leased() {
    let db = TestDb::new();
    let pool = db.pool();
    let (server, gate) = server_gated_at(15);
    let ids = enqueue_many(&pool, 40).await;
    let w = worker(&pool, smtp_for(&server, TlsMode::None), backlog_worker());
    let shutdown = CancellationToken::new();
    let task = w.spawn(shutdown.clone());

    // Batch 2 (rows 11–20) is being sent, batch 3 is claimed ahead.
    wait_for_claim_ahead(&pool, &gate).await;
    shutdown.cancel();
    gate.open.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(open_attempts(&pool).await, 0, "a claimed row was forgotten");
    let sent = server.message_count();
    assert_eq!(sent, 15, "the batch stopped before its next send");
    assert_eq!(sent_count(&pool).await, 15, "every outcome was written");
    for id in ids {
        let r = row(&pool, id).await;
        let a = attempts(&pool, id).await;
        if r.status == "sent" {
            assert_eq!(a, vec![(1, Some("sent".into()), Some(250), None)]);
        } else {
            assert_eq!((r.status.as_str(), r.cycle_attempts), ("pending", 0));
            assert!(r.next_attempt_at <= Utc::now(), "still leased");
            assert!(a.is_empty(), "a released row keeps no attempt: {a:?}");
        }
    }
}

#[derive(diesel::QueryableByName, Debug)]
struct Try {
    #[diesel(sql_type = SqlUuid)]
    delivery_id: Uuid,
    #[diesel(sql_type = Int4)]
    attempt_no: i32,
    #[diesel(sql_type = Timestamptz)]
    started_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_claim_and_outcome_resends_only_after_the_lease() {
    let db = TestDb::new();
    let pool = db.pool();
    let (server, gate) = server_gated_at(15);
    let ids = enqueue_many(&pool, 40).await;
    let mut settings = backlog_worker();
    settings.lease = Duration::from_secs(2);

    // The process that dies: its own runtime and pool, dropped mid-batch
    // with a batch claimed ahead and outcomes possibly unwritten.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let own_pool = galaxy_db::build_pool(db.url(), galaxy_db::PoolSettings::default());
    let w = worker(
        &own_pool,
        smtp_for(&server, TlsMode::None),
        settings.clone(),
    );
    doomed.spawn(async move { w.spawn(CancellationToken::new()).await });
    wait_for_claim_ahead(&pool, &gate).await;
    doomed.shutdown_background();
    gate.open.store(true, Ordering::SeqCst);

    // Another worker drains the outbox; the rows the dead one held come
    // back only when their lease ends.
    let survivor = worker(&pool, smtp_for(&server, TlsMode::None), settings);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent_count(&pool).await < 40 {
        assert!(Instant::now() < deadline, "not every mail was sent");
        survivor.run_batch(&CancellationToken::new()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    survivor.run_batch(&CancellationToken::new()).await.unwrap();

    use diesel_async::RunQueryDsl;
    let mut c = pool.get().await.unwrap();
    let tries: Vec<Try> = diesel::sql_query(
        "SELECT delivery_id, attempt_no, started_at, error FROM mail_attempts \
         ORDER BY delivery_id, attempt_no",
    )
    .load(&mut c)
    .await
    .unwrap();
    let mut interrupted = 0;
    for pair in tries.windows(2) {
        let (first, next) = (&pair[0], &pair[1]);
        if first.delivery_id != next.delivery_id {
            continue;
        }
        assert!(
            first
                .error
                .as_deref()
                .unwrap_or("")
                .starts_with("interrupted"),
            "{first:?}"
        );
        assert_eq!(next.attempt_no, first.attempt_no + 1);
        assert!(
            next.started_at >= first.started_at + chrono::Duration::seconds(2),
            "re-sent before the lease ended: {first:?} then {next:?}"
        );
        interrupted += 1;
    }
    // The rest of batch 2 (the held mail included) and all of batch 3.
    assert_eq!(interrupted, 16, "rows leased at the crash");
    for id in &ids {
        assert_eq!(row(&pool, *id).await.status, "sent");
    }
    // At least once: every mail arrived; only the one the dead worker was
    // sending when it died arrived twice.
    let got: Vec<String> = server
        .messages()
        .iter()
        .filter_map(galaxy_testsmtp::Received::message_id)
        .collect();
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 40);
    assert!(got.len() <= 41, "{} duplicates", got.len() - 40);
}
