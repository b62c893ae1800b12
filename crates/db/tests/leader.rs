//! Leader election over a real PostgreSQL: one leader at a time, a new one
//! soon after the old one goes, and a leader whose session is cut steps
//! down.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use galaxy_db::leader::{self, ElectionSettings, Leadership};
use galaxy_testdb::TestDb;
use tokio_util::sync::CancellationToken;

const SETTINGS: ElectionSettings = ElectionSettings {
    lock_key: 0x4c45_4144,
    retry: Duration::from_millis(200),
};

async fn until(what: &str, limit: Duration, cond: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn leaders(all: &[&Leadership]) -> usize {
    all.iter().filter(|l| l.is_leader()).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_and_a_successor_when_it_stops() {
    let db = TestDb::new();
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let (a, task_a) = leader::start(db.url().clone(), SETTINGS, stop_a.clone()).await;
    let (b, task_b) = leader::start(db.url().clone(), SETTINGS, stop_b.clone()).await;
    // The first round is over when `start` returns: the first one leads.
    assert!(a.is_leader());
    assert_eq!(leaders(&[&a, &b]), 1);
    // It stays one for a while.
    for _ in 0..25 {
        assert_eq!(leaders(&[&a, &b]), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (old, old_stop, old_task, new) = if a.is_leader() {
        (a, stop_a, task_a, b)
    } else {
        (b, stop_b, task_b, a)
    };
    old_stop.cancel();
    old_task.await.unwrap();
    assert!(!old.is_leader(), "a stopped election does not lead");
    let took = until("a successor", Duration::from_secs(5), || new.is_leader()).await;
    assert!(took < Duration::from_secs(2), "took over in {took:?}");
    // `lost` resolves for the stopped one at once.
    tokio::time::timeout(Duration::from_secs(1), old.lost())
        .await
        .expect("lost() resolves for a follower");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_whose_session_is_terminated_steps_down() {
    let db = TestDb::new();
    let stop = CancellationToken::new();
    let (me, task) = leader::start(db.url().clone(), SETTINGS, stop.clone()).await;
    assert!(me.is_leader(), "alone, it leads from the first round");
    let lost = tokio::spawn({
        let me = me.clone();
        async move { me.lost().await }
    });
    let mut conn = db.pool().get().await.unwrap();
    // Advisory locks live per database, and tests run in parallel on one
    // server: only this test's own database's holder is cut.
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND objid = {} AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        SETTINGS.lock_key
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(2), lost)
        .await
        .expect("stepped down within two checks")
        .unwrap();
    // It reconnects and leads again (nobody else wants the lock).
    until("leading again", Duration::from_secs(5), || me.is_leader()).await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn always_leads_and_never_loses() {
    let l = Leadership::always();
    assert!(l.is_leader());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), l.lost())
            .await
            .is_err()
    );
}
