//! Delivery throughput: the outbox worker draining 10,000 queued rows to a
//! local SMTP sink, against mail-send alone pushing the same number of
//! messages to the same sink over the same number of connections — at 1 and
//! at 4 (`BACKEND_MAIL_SMTP_CONNECTIONS`).
//!
//! `cargo bench -p galaxy-mail --bench delivery` (`MAIL_BENCH_ROWS` changes
//! the row count, `MAIL_BENCH_CONNECTIONS=1,4` the connection counts,
//! `MAIL_BENCH_ROUNDS` the rounds). Prints both rates and their ratio for
//! each count, the ratios last.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]
#![allow(clippy::print_stdout)] // a bench reports on stdout

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use galaxy_mail::{Settings, SmtpSettings, TlsMode, Worker, WorkerSettings};
use galaxy_testdb::TestDb;
use galaxy_testsmtp::SmtpServer;
use mail_send::SmtpClientBuilder;
use mail_send::mail_builder::MessageBuilder;
use mail_send::smtp::message::Message;
use tokio_util::sync::CancellationToken;

const FROM: &str = "galaxy@bench.test";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rows: usize = env_or("MAIL_BENCH_ROWS", 10_000);
    let rounds: usize = env_or("MAIL_BENCH_ROUNDS", 5);
    let counts: Vec<usize> = std::env::var("MAIL_BENCH_CONNECTIONS")
        .unwrap_or_else(|_| "1,4".to_owned())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(rows, rounds, &counts));
}

async fn run(rows: usize, rounds: usize, counts: &[usize]) {
    let db = TestDb::new();
    let pool = db.pool();
    let mut ratios = Vec::new();
    for &n in counts {
        // The machine is shared: alternate the two measurements and report
        // the median of each, so a burst of load does not decide the ratio.
        let mut worker_rates = Vec::new();
        let mut baseline_rates = Vec::new();
        let (mut worker_cpu, mut db_cpu, mut vacuum_cpu, mut baseline_cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let (took, used) = baseline(db.name(), rows, n).await;
            baseline_rates.push(rows as f64 / took.as_secs_f64());
            baseline_cpu.push(used.own * 1e6 / rows as f64);
            let (took, used) = worker(&pool, db.name(), rows, n).await;
            worker_rates.push(rows as f64 / took.as_secs_f64());
            worker_cpu.push(used.own * 1e6 / rows as f64);
            db_cpu.push(used.db * 1e6 / rows as f64);
            vacuum_cpu.push(used.vacuum * 1e6 / rows as f64);
        }
        let worker_rate = median(&mut worker_rates);
        let baseline_rate = median(&mut baseline_rates);
        println!(
            "mail delivery benchmark: {rows} messages, {n} SMTP connection(s), loopback sink, median of {rounds}"
        );
        println!("  outbox worker:   {worker_rate:9.0} deliveries/s  (runs: {worker_rates:.0?})");
        println!(
            "  mail-send alone: {baseline_rate:9.0} messages/s    (runs: {baseline_rates:.0?})"
        );
        // Where the time goes on a machine with few cores: CPU per mail of
        // this process (client and sink alike) and of the PostgreSQL
        // backends serving the bench database.
        println!(
            "  CPU per mail: worker {:.0} µs + PostgreSQL {:.0} µs (autovacuum {:.0}), mail-send alone {:.0} µs ({} cores)",
            median(&mut worker_cpu),
            median(&mut db_cpu),
            median(&mut vacuum_cpu),
            median(&mut baseline_cpu),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        );
        let ratio = worker_rate / baseline_rate;
        println!("  ratio worker / mail-send at {n}: {ratio:.2}");
        ratios.push((n, ratio));
    }
    for (n, ratio) in ratios {
        println!("ratio worker / mail-send, {n} connection(s): {ratio:.2}");
    }
}

/// CPU seconds (user + system) used so far by this process and by the
/// PostgreSQL backends connected to the bench database (Linux `/proc`;
/// zero elsewhere).
struct Cpu {
    own: f64,
    db: f64,
    /// Part of `db`: autovacuum workers cleaning up after the run.
    vacuum: f64,
}

impl Cpu {
    fn now(db_name: &str) -> Self {
        let own = ticks(std::path::Path::new("/proc/self"));
        let (mut db, mut vacuum) = (0.0, 0.0);
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            // A backend names its database in its process title.
            let title = String::from_utf8_lossy(&cmdline);
            if title.starts_with("postgres: ") && title.contains(db_name) {
                let used = ticks(&entry.path());
                db += used;
                if title.contains("autovacuum") {
                    vacuum += used;
                }
            }
        }
        Self { own, db, vacuum }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            own: self.own - before.own,
            db: self.db - before.db,
            vacuum: self.vacuum - before.vacuum,
        }
    }
}

/// utime + stime of a process in seconds (USER_HZ is 100 on Linux).
fn ticks(proc_dir: &std::path::Path) -> f64 {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count from after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    (field(11) + field(12)) / 100.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// mail-send alone over `n` connections taking messages from one counter,
/// rendered the way the worker renders them.
async fn baseline(db_name: &str, rows: usize, n: usize) -> (Duration, Cpu) {
    let sink = SmtpServer::builder()
        .threads(32)
        .start()
        .expect("SMTP sink");
    let builder = SmtpClientBuilder::new_with_tls_connector(
        "127.0.0.1".to_owned(),
        sink.port(),
        tls_connector(),
    )
    .timeout(Duration::from_secs(30));
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = Cpu::now(db_name);
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let builder = builder.clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut client = builder.connect_plain().await.expect("connect");
                // As the worker does (see smtp.rs): without it every message
                // waits for a delayed ACK and both sides measure the TCP
                // stack, not the code.
                client.stream.set_nodelay(true).expect("nodelay");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= rows {
                        break;
                    }
                    let to = format!("player{i}@bench.test");
                    let body = MessageBuilder::new()
                        .from(FROM)
                        .to(to.as_str())
                        .subject(format!("Your Galaxy sign-in code: {i:06}"))
                        .message_id(format!("{}@bench.test", uuid::Uuid::now_v7()))
                        .date(chrono::Utc::now().timestamp())
                        .text_body(format!("Your Galaxy sign-in code is {i:06}\n"))
                        .write_to_vec()
                        .expect("render");
                    client
                        .send(Message::new(FROM, [to.as_str()], body))
                        .await
                        .expect("send");
                }
                client.quit().await.expect("SMTP QUIT");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("sender");
    }
    let elapsed = started.elapsed();
    let cpu = Cpu::now(db_name).since(&cpu);
    assert_eq!(sink.message_count(), rows);
    (elapsed, cpu)
}

/// The worker draining `rows` queued login-code mails over `n` sessions per
/// batch, with the defaults otherwise.
async fn worker(pool: &galaxy_db::Pool, db_name: &str, rows: usize, n: usize) -> (Duration, Cpu) {
    let sink = SmtpServer::builder()
        .threads(32)
        .start()
        .expect("SMTP sink");
    {
        let mut c = pool.get().await.expect("conn");
        diesel::sql_query(
            "INSERT INTO mail_deliveries (id, kind, to_address, subject, body_text)
             SELECT gen_random_uuid(), 'auth.login_code', 'player' || g || '@bench.test',
                    'Your Galaxy sign-in code: ' || lpad(g::text, 6, '0'),
                    'Your Galaxy sign-in code is ' || lpad(g::text, 6, '0') || E'\\n'
             FROM generate_series(1, $1) AS g",
        )
        .bind::<diesel::sql_types::Integer, _>(i32::try_from(rows).expect("rows"))
        .execute(&mut c)
        .await
        .expect("queue rows");
    }
    let worker = Worker::new(
        pool.clone(),
        Settings {
            smtp: SmtpSettings::new("127.0.0.1", sink.port(), TlsMode::None, FROM),
            worker: WorkerSettings {
                connections: n,
                ..WorkerSettings::default()
            },
        },
    )
    .expect("worker");
    let go = CancellationToken::new();
    let cpu = Cpu::now(db_name);
    let started = Instant::now();
    let mut sent = 0;
    loop {
        let out = worker.run_batch(&go).await.expect("batch");
        sent += out.processed;
        if out.processed == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    let cpu = Cpu::now(db_name).since(&cpu);
    assert_eq!(sent, rows);
    assert_eq!(sink.message_count(), rows);
    (elapsed, cpu)
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    // Unused on a plaintext session, but the builder wants one; built
    // without touching the process-level crypto provider.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}
