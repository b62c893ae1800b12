//! The turn scheduler holds no row lock, transaction or pooled connection
//! while the engine generates a turn, and a claim left by a process that
//! died runs out: still exactly one turn per due tick.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use galaxy_runtime::{Actor, ObservedState, PullPolicy, RuntimeService};
use support::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// An engine that answers `POST /v1/turns {"turn": N}` with turn N after
/// `delay`; counts the requests.
async fn slow_engine(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                let body = loop {
                    let n = sock.read(&mut buf[got..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]).into_owned();
                    if let Some(i) = text.find("\r\n\r\n")
                        && text[i + 4..].contains('}')
                    {
                        break text[i + 4..].to_owned();
                    }
                };
                AtomicUsize::fetch_add(&seen, 1, Ordering::SeqCst);
                let turn: serde_json::Value = serde_json::from_str(&body).unwrap();
                tokio::time::sleep(delay).await;
                let answer = serde_json::json!({ "turn": turn["turn"] }).to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                // A scheduler that gave up waiting has closed its end; the
                // test asserts on what the runtime recorded, not on this.
                if let Err(e) = sock.write_all(reply.as_bytes()).await {
                    eprintln!("fake engine: reply not delivered: {e}");
                }
            });
        }
    });
    (url, calls)
}

/// A running game whose record points at `endpoint` instead of its container.
async fn game_on(h: &Harness, endpoint: &str) -> Uuid {
    let game = h.game().await;
    h.start_as_owner(game, "1.0.0", ObservedState::Running)
        .await;
    sql(
        h,
        game,
        "UPDATE runtime_records SET endpoint = $2 WHERE game_id = $1",
        endpoint,
    )
    .await;
    game
}

async fn sql(h: &Harness, game: Uuid, q: &str, text: &str) {
    let mut c = h.db.pool().get().await.unwrap();
    diesel::sql_query(q)
        .bind::<SqlUuid, _>(game)
        .bind::<Text, _>(text)
        .execute(&mut c)
        .await
        .unwrap();
}

async fn turns(h: &Harness, game: Uuid) -> i64 {
    let mut c = h.db.pool().get().await.unwrap();
    diesel::sql_query(format!(
        "SELECT count(*) AS n FROM game_turns WHERE game_id = '{game}'"
    ))
    .get_result::<Count>(&mut c)
    .await
    .unwrap()
    .n
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_in_progress_holds_no_lock_transaction_or_connection() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let (endpoint, calls) = slow_engine(Duration::from_secs(2)).await;
    let game = game_on(&h, &endpoint).await;
    h.runtime
        .force_next_turn(game, Actor::System)
        .await
        .unwrap();

    let runtime = h.runtime.clone();
    let tick = tokio::spawn(async move { runtime.tick_once().await });
    h.eventually(Duration::from_secs(5), "the engine is asked", || {
        AtomicUsize::load(&calls, Ordering::SeqCst) == 1
    })
    .await;

    // While the engine works: the row is free, nobody idles in a transaction.
    let mut c = h.db.pool().get().await.unwrap();
    c.transaction(async |c| {
        diesel::sql_query(
            "SELECT count(*) AS n FROM (SELECT 1 FROM runtime_records WHERE game_id = $1 \
             FOR UPDATE NOWAIT) x",
        )
        .bind::<SqlUuid, _>(game)
        .get_result::<Count>(c)
        .await
    })
    .await
    .expect("the record is not locked during the engine call");
    let idle: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .get_result(&mut c)
    .await
    .unwrap();
    assert_eq!(
        idle.n, 0,
        "no transaction is held open across the engine call"
    );
    drop(c);
    // Another scheduler ticking meanwhile finds nothing due: the turn is claimed.
    let other = h.second_process().await;
    assert_eq!(other.tick_once().await.unwrap(), 0);

    assert_eq!(tick.await.unwrap().unwrap(), 1);
    assert_eq!(turns(&h, game).await, 1);
    let record = h.runtime.record(game).unwrap();
    assert_eq!((record.current_turn, record.skip_next_wait), (1, false));
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_left_by_a_dead_process_runs_out_and_yields_one_turn() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let (endpoint, calls) = slow_engine(Duration::from_millis(10)).await;
    let game = game_on(&h, &endpoint).await;
    h.runtime
        .force_next_turn(game, Actor::System)
        .await
        .unwrap();

    // A live claim of another process: not due here.
    sql(
        &h,
        game,
        "UPDATE runtime_records SET turn_claimed_until = now() + $2::interval WHERE game_id = $1",
        "1 hour",
    )
    .await;
    assert_eq!(h.runtime.tick_once().await.unwrap(), 0);
    assert_eq!(AtomicUsize::load(&calls, Ordering::SeqCst), 0);
    // Its process died: the claim runs out, the turn is claimed again, once.
    sql(
        &h,
        game,
        "UPDATE runtime_records SET turn_claimed_until = now() - $2::interval WHERE game_id = $1",
        "1 second",
    )
    .await;
    let (a, b) = tokio::join!(h.runtime.tick_once(), h.runtime.tick_once());
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(turns(&h, game).await, 1);
    assert_eq!(h.runtime.record(game).unwrap().current_turn, 1);
    assert_eq!(
        h.runtime.tick_once().await.unwrap(),
        0,
        "nothing due after the turn"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_write_moves_updated_at_forward_and_the_cache_keeps_the_newest() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let (endpoint, _) = slow_engine(Duration::from_millis(10)).await;
    let game = game_on(&h, &endpoint).await;
    let mut seen = vec![h.runtime.record(game).unwrap()];
    h.runtime
        .force_next_turn(game, Actor::System)
        .await
        .unwrap();
    seen.push(h.runtime.record(game).unwrap());
    assert_eq!(h.runtime.tick_once().await.unwrap(), 1);
    seen.push(h.runtime.record(game).unwrap());
    h.runtime.reconcile_once().await.unwrap();
    seen.push(h.runtime.record(game).unwrap());
    for pair in seen.windows(2) {
        let (older, newer) = (&pair[0], &pair[1]);
        assert!(
            newer.updated_at > older.updated_at,
            "{older:?} then {newer:?}"
        );
        assert!(newer.supersedes(Some(older)));
        assert!(
            !older.supersedes(Some(newer)),
            "a write reported late never replaces a newer one"
        );
    }
    // The cache holds what committed last.
    let mut c = h.db.pool().get().await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct At {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        at: chrono::DateTime<chrono::Utc>,
    }
    let at: At = diesel::sql_query(format!(
        "SELECT updated_at AS at FROM runtime_records WHERE game_id = '{game}'"
    ))
    .get_result(&mut c)
    .await
    .unwrap();
    assert_eq!(at.at, h.runtime.record(game).unwrap().updated_at);
}
