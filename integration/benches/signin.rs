//! Sign-in throughput (issue 17): `POST /api/v1/auth/email-code` then
//! `POST /api/v1/auth/email-code/verify` pairs per second, end to end over
//! HTTP against the release backend binary (each pair a new email address, so a
//! new account: challenge, outbox row, account and session written), beside
//! the raw insert of the same rows into the same database in the same run.
//! Rounds alternate the two; medians are reported and the ratio printed last.
//!
//! The code is read from the outbox row, as the integration tests do
//! (`galaxy_integration::api::login_code`), through an index on the
//! recipient that the bench adds to its own database (the raw inserts pay
//! for it too). Mail delivery is not part of a pair: the backend's mail
//! worker is idle for the run (`BACKEND_MAIL_WORKER_INTERVAL=1h`); the
//! `delivery` bench of `galaxy-mail` measures it.
//!
//! Each client is a player behind the gateway: it sends the player's address
//! in `X-Forwarded-For` as the gateway does (a documentation range, one per
//! client; `BENCH_ONE_ADDRESS=1` gives all the same one). The code limits
//! are lifted by configuration (`BACKEND_AUTH_EMAIL_CODE_LIMIT`,
//! `BACKEND_AUTH_IP_CODE_LIMIT`), not by spreading addresses: the limit's
//! per-address lock is what one address serialises on.
//!
//! ```text
//! cargo build --release -p galaxy-backend
//! cargo bench -p galaxy-integration --bench signin
//! ```
//! `BENCH_CLIENTS` (default 16) pairs in flight, `BENCH_PAIRS` (default
//! 4000) per round, `BENCH_ROUNDS` (default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]
// Printing the figures is this program's whole output.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use galaxy_db::{Pool, PoolSettings};
use galaxy_integration::BackendBuilder;
use galaxy_integration::api::code_in_text;
use galaxy_integration::load::env_or;
use galaxy_testdb::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct MailText {
    #[diesel(sql_type = Text)]
    body_text: String,
}

/// One pair over HTTP; returns the session token.
async fn pair(
    client: &reqwest::Client,
    base: &str,
    pool: &Pool,
    email: &str,
    address: &str,
) -> String {
    let r = client
        .post(format!("{base}/api/v1/auth/email-code"))
        .header("x-forwarded-for", address)
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("email-code");
    assert_eq!(r.status().as_u16(), 202, "email-code");
    let body: Value = r.json().await.expect("email-code body");
    let challenge = body["challenge_id"].clone();
    let mail: MailText = {
        let mut conn = pool.get().await.expect("bench connection");
        galaxy_db::sql(
            "SELECT body_text FROM mail_deliveries \
             WHERE to_address = $1 AND kind = 'auth.login_code'",
        )
        .bind::<Text, _>(email)
        .get_result(&mut conn)
        .await
        .expect("the login mail in the outbox")
    };
    let code = code_in_text(&mail.body_text);
    let r = client
        .post(format!("{base}/api/v1/auth/email-code/verify"))
        .header("x-forwarded-for", address)
        .json(&json!({ "challenge_id": challenge, "code": code }))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status().as_u16(), 200, "verify");
    let body: Value = r.json().await.expect("verify body");
    body["token"].as_str().expect("token").to_owned()
}

/// Pairs per second over HTTP, `clients` at once, `pairs` in all. Each
/// client is a player behind the gateway, which forwards the player's
/// address (`X-Forwarded-For`, trusted by the backend from its gateway);
/// with `BENCH_ONE_ADDRESS=1` every client has the same one, the worst case
/// of one address's limit serialising every request.
async fn signin_rate(base: &str, pool: &Pool, clients: usize, pairs: usize, round: usize) -> f64 {
    let one_address = std::env::var("BENCH_ONE_ADDRESS").is_ok_and(|v| v == "1");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let (next, pool, base) = (Arc::clone(&next), pool.clone(), base.to_owned());
            let address = if one_address {
                "198.51.100.1".to_owned()
            } else {
                format!("198.51.100.{}", n % 250 + 1)
            };
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= pairs {
                        break;
                    }
                    let email = format!("p{round}-{i}@bench.test");
                    let token = pair(&client, &base, &pool, &email, &address).await;
                    assert!(token.starts_with("gu_"), "{token}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    pairs as f64 / started.elapsed().as_secs_f64()
}

/// The rows one pair leaves: a consumed challenge, its login mail, a new
/// account and its session, in one transaction.
async fn raw_pair(conn: &mut diesel_async::AsyncPgConnection, email: &str) {
    conn.transaction(async |c| {
        let challenge = Uuid::now_v7();
        galaxy_db::sql(
            "INSERT INTO auth_challenges (id, email, code_hash, attempts, expires_at, source_ip, \
                                          created_at, consumed_at) \
             VALUES ($1, $2, $3, 0, now() + interval '10 minutes', '127.0.0.1'::inet, now(), now())",
        )
        .bind::<SqlUuid, _>(challenge)
        .bind::<Text, _>(email)
        .bind::<Text, _>("0".repeat(64))
        .execute(c)
        .await?;
        galaxy_db::sql(
            "INSERT INTO mail_deliveries (id, kind, to_address, subject, body_text, secret_until) \
             VALUES ($1, 'auth.login_code', $2, 'Your Galaxy sign-in code: 123456', \
                     'Your Galaxy sign-in code is 123456. It expires in 10 minutes.', \
                     now() + interval '10 minutes')",
        )
        .bind::<SqlUuid, _>(Uuid::now_v7())
        .bind::<Text, _>(email)
        .execute(c)
        .await?;
        let account = Uuid::now_v7();
        galaxy_db::sql(
            "INSERT INTO accounts (id, email, display_name) VALUES ($1, $2, $3)",
        )
        .bind::<SqlUuid, _>(account)
        .bind::<Text, _>(email)
        .bind::<Text, _>(format!("Player {}", &account.simple().to_string()[..8]))
        .execute(c)
        .await?;
        galaxy_db::sql(
            "INSERT INTO auth_sessions (id, account_id, token_hash, expires_at, source_ip) \
             VALUES ($1, $2, $3, now() + interval '720 hours', '127.0.0.1'::inet)",
        )
        .bind::<SqlUuid, _>(Uuid::now_v7())
        .bind::<SqlUuid, _>(account)
        .bind::<Text, _>(Uuid::now_v7().simple().to_string())
        .execute(c)
        .await?;
        Ok::<_, diesel::result::Error>(())
    })
    .await
    .expect("raw pair");
}

/// Raw pairs per second, `clients` connections at once, `pairs` in all.
async fn raw_rate(pool: &Pool, clients: usize, pairs: usize, round: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, pool) = (Arc::clone(&next), pool.clone());
            tokio::spawn(async move {
                let mut conn = pool.get().await.expect("raw connection");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= pairs {
                        break;
                    }
                    raw_pair(&mut conn, &format!("r{round}-{i}@bench.test")).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("raw client");
    }
    pairs as f64 / started.elapsed().as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run() {
    let clients = env_or("BENCH_CLIENTS", 16);
    let pairs = env_or("BENCH_PAIRS", 4000);
    let rounds = env_or("BENCH_ROUNDS", 5);
    let db = TestDb::new();
    let pool = galaxy_db::build_pool(
        db.url(),
        PoolSettings {
            max_connections: clients + 2,
            acquire_timeout: Duration::from_secs(30),
        },
    );
    {
        let mut conn = pool.get().await.expect("connection");
        diesel::sql_query("CREATE INDEX bench_mail_to_idx ON mail_deliveries (to_address)")
            .execute(&mut conn)
            .await
            .expect("bench index");
    }
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_AUTH_EMAIL_CODE_LIMIT", "1000000/15m")
        .env("BACKEND_AUTH_IP_CODE_LIMIT", "4000000000/1s")
        .env("BACKEND_MAIL_WORKER_INTERVAL", "1h")
        .env("RUST_LOG", "warn")
        .spawn();
    backend.wait_ready(Duration::from_secs(60)).await;
    let base = backend.url("");

    // Warm both paths (connections, prepared statements, caches).
    signin_rate(&base, &pool, clients, clients * 4, 1000).await;
    raw_rate(&pool, clients, clients * 4, 1000).await;

    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        raw.push(raw_rate(&pool, clients, pairs, round).await);
        ours.push(signin_rate(&base, &pool, clients, pairs, round).await);
        println!(
            "round {round}: sign-in {:6.0} pairs/s, raw insert {:6.0} pairs/s",
            ours[round], raw[round]
        );
    }
    let (o, r) = (median(&ours), median(&raw));
    println!("sign-in benchmark: {pairs} pairs per round, {clients} in flight, median of {rounds}");
    println!("  email-code + verify over HTTP: {o:7.0} pairs/s  (runs: {ours:.0?})");
    println!("  raw insert of the same rows:   {r:7.0} pairs/s  (runs: {raw:.0?})");
    println!("ratio sign-in / raw insert: {:.2}", o / r);
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
