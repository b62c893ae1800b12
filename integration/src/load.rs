//! Load for the benches: seeded accounts with known tokens, keep-alive
//! clients counting answers per second, and the statistics the reports use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::sql_types::Integer;
use galaxy_testdb::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// A bench's count setting: the variable's value, or `default` when it is
/// unset or not a number.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bearer token of seeded account `n`.
pub fn token(n: usize) -> String {
    use sha2::Digest;
    format!(
        "gu_{}",
        hex::encode(sha2::Sha256::digest(format!("bench-{n}")))
    )
}

/// `n` accounts with one live session each (token [`token`]`(i)` for the
/// `i`-th), written straight to the tables before a backend starts.
pub async fn seed_sessions(db: &TestDb, n: usize) -> Vec<Uuid> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = db.pool().get().await.expect("a connection");
    let rows: Vec<Id> = diesel::sql_query(
        "WITH a AS ( \
           INSERT INTO accounts (id, email, display_name) \
           SELECT gen_random_uuid(), 'bench-' || g || '@example.test', 'P' || g \
           FROM generate_series(0, $1 - 1) g RETURNING id, email), \
         s AS ( \
           INSERT INTO auth_sessions (id, account_id, token_hash, expires_at) \
           SELECT gen_random_uuid(), id, \
                  encode(sha256(convert_to('gu_' || encode(sha256(convert_to( \
                      'bench-' || split_part(split_part(email, '@', 1), '-', 2), 'UTF8')), 'hex'), 'UTF8')), 'hex'), \
                  now() + interval '1 day' \
           FROM a RETURNING account_id) \
         SELECT a.id FROM a ORDER BY split_part(split_part(a.email, '@', 1), '-', 2)::int",
    )
    .bind::<Integer, _>(i32::try_from(n).expect("a count that fits"))
    .load(&mut conn)
    .await
    .expect("seed accounts and sessions");
    rows.into_iter().map(|r| r.id).collect()
}

/// One keep-alive connection sending `request` until `stop`, counting the
/// 200 answers in `done`.
async fn drive(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        conn.write_all(&request).await.expect("write");
        let mut filled = 0;
        loop {
            let n = conn.read(&mut buf[filled..]).await.expect("read");
            assert!(n > 0, "server closed the connection");
            filled += n;
            let text = String::from_utf8_lossy(&buf[..filled]);
            if let Some(end) = text.find("\r\n\r\n") {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("content-length");
                if filled >= end + 4 + len {
                    break;
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// `GET /api/v1/user/me` answers per second over `seconds`, from
/// `connections` keep-alive clients spread over `addrs` in turn.
pub async fn me_rate(addrs: &[SocketAddr], token: &str, connections: usize, seconds: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            let request = format!(
                "GET /api/v1/user/me HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            tokio::spawn(drive(
                addr,
                Arc::new(request.into_bytes()),
                Arc::clone(&stop),
                Arc::clone(&done),
            ))
        })
        .collect();
    measure(tasks, &stop, &done, seconds).await
}

/// Completions per second counted in `done` by running `tasks` over
/// `seconds` (after a short warm-up); then sets `stop` and joins them.
pub async fn measure(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: &AtomicBool,
    done: &AtomicU64,
    seconds: u64,
) -> f64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let n = done.load(Ordering::Relaxed) - start;
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a load client");
    }
    n as f64 / elapsed
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "p is in 0..=1, so the rank is in 0..len"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
