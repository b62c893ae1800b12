//! Several backends on one database (issue 15), in one run:
//!
//! - `propagation`: a rename on backend A until backend B answers it
//!   (change announcements), p50/p99 over 200 changes;
//! - `reads`: cached `GET /api/v1/user/me` per second with 32 keep-alive
//!   clients on one backend, beside the same clients spread over two;
//! - `signin`: `email-code` + `verify` pairs per second with 16 clients on
//!   one backend, beside the same clients spread over two.
//!
//! Throughput rounds alternate one and two backends; medians and the ratio
//! (two ÷ one) are printed last. Every process shares this machine's cores,
//! so two backends measure the cost of coherence, not added capacity.
//!
//! ```text
//! cargo build --release -p galaxy-backend
//! cargo bench -p galaxy-integration --bench scale            # all
//! cargo bench -p galaxy-integration --bench scale -- reads   # one
//! ```
//! `BENCH_SECONDS` (default 3 per round).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
// Printing the figures is this program's whole output.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use galaxy_integration::api::login_code;
use galaxy_integration::load::{me_rate, measure, median, percentile, seed_sessions, token};
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_testdb::TestDb;
use serde_json::{Value, json};

fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

async fn backends(db: &TestDb) -> (Backend, Backend) {
    let builder = || {
        BackendBuilder::new(&db.dsn())
            .env("RUST_LOG", "warn")
            .env("BACKEND_AUTH_IP_CODE_LIMIT", "100000000/1s")
            .env("BACKEND_AUTH_EMAIL_CODE_LIMIT", "100000000/1s")
    };
    let mut a = builder().spawn();
    a.wait_ready(Duration::from_secs(60)).await;
    let mut b = builder().spawn();
    b.wait_ready(Duration::from_secs(60)).await;
    (a, b)
}

async fn name_on(b: &Backend, token: &str) -> Value {
    let r = b
        .client
        .get(b.url("/api/v1/user/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /me");
    r.json::<Value>().await.expect("JSON")["display_name"].clone()
}

async fn bench_propagation() {
    let db = TestDb::new();
    seed_sessions(&db, 1).await;
    let (a, b) = backends(&db).await;
    let token = token(0);
    let mut seen = Vec::new();
    for i in 0..200 {
        let name = format!("Renamed {i}");
        let r = a
            .client
            .patch(a.url("/api/v1/user/me"))
            .bearer_auth(&token)
            .json(&json!({ "display_name": name }))
            .send()
            .await
            .expect("PATCH /me");
        assert_eq!(r.status(), 200);
        let committed = Instant::now();
        while name_on(&b, &token).await != name.as_str() {
            assert!(committed.elapsed() < Duration::from_secs(5), "never seen");
        }
        seen.push(committed.elapsed());
    }
    seen.sort();
    println!(
        "propagation: 200 renames on A seen on B: p50 {:?}, p99 {:?}, max {:?} (goal p99 <= 1 s)",
        percentile(&seen, 0.5),
        percentile(&seen, 0.99),
        seen[seen.len() - 1]
    );
}

async fn bench_reads() {
    let db = TestDb::new();
    seed_sessions(&db, 1).await;
    let (a, b) = backends(&db).await;
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        one.push(me_rate(&[a.http], &token(0), 32, seconds()).await);
        two.push(me_rate(&[a.http, b.http], &token(0), 32, seconds()).await);
    }
    println!("reads: one backend rounds {one:.0?} req/s; two backends rounds {two:.0?} req/s");
    let (o, t) = (median(one), median(two));
    println!(
        "reads: median one {o:.0} req/s, two {t:.0} req/s, ratio {:.2}",
        t / o
    );
}

/// Sign-in pairs per second over `seconds` from `clients` clients spread
/// over `addrs`; each email is new (an account is created per pair).
async fn signin_rate(db: &Arc<TestDb>, addrs: &[SocketAddr], clients: usize, seconds: u64) -> f64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let base = format!("http://{}", addrs[i % addrs.len()]);
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            let db = Arc::clone(db);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = NEXT.fetch_add(1, Ordering::Relaxed);
                    let email = format!("s{n}@example.test");
                    let r = client
                        .post(format!("{base}/api/v1/auth/email-code"))
                        .json(&json!({ "email": email }))
                        .send()
                        .await
                        .expect("email-code");
                    assert_eq!(r.status(), 202);
                    let challenge: Value = r.json().await.expect("JSON");
                    let code = login_code(&db, &email).await;
                    let r = client
                        .post(format!("{base}/api/v1/auth/email-code/verify"))
                        .json(&json!({ "challenge_id": challenge["challenge_id"], "code": code }))
                        .send()
                        .await
                        .expect("verify");
                    assert_eq!(r.status(), 200);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    measure(tasks, &stop, &done, seconds).await
}

async fn bench_signin() {
    let db = Arc::new(TestDb::new());
    let (a, b) = backends(&db).await;
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        one.push(signin_rate(&db, &[a.http], 16, seconds()).await);
        two.push(signin_rate(&db, &[a.http, b.http], 16, seconds()).await);
    }
    println!("signin: one backend rounds {one:.0?} pairs/s; two backends rounds {two:.0?} pairs/s");
    let (o, t) = (median(one), median(two));
    println!(
        "signin: median one {o:.0} pairs/s, two {t:.0} pairs/s, ratio {:.2}",
        t / o
    );
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    if wants("propagation") {
        rt.block_on(bench_propagation());
    }
    if wants("reads") {
        rt.block_on(bench_reads());
    }
    if wants("signin") {
        rt.block_on(bench_signin());
    }
}
