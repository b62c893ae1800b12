//! Throughput of `GET /api/v1/user/me` with a valid token against a bare
//! actix-web handler returning a constant, both served over real HTTP on
//! loopback and driven by the same keep-alive client with the same
//! concurrency and duration. Prints both rates and their ratio (goal ≥ 0.9,
//! issue 14; docs/performance.md says where the rest goes).
//!
//! The `me` server is composed like the backend's: request-context
//! middleware (request id, access-log line through the real JSON log layer,
//! written to a sink), extractor config, the user routes, the auth cache as
//! session resolver and geo country counters; the bare server has nothing.
//!
//! `cargo bench -p galaxy-auth --bench me` (env `BENCH_SECONDS`, default 5;
//! `BENCH_CONNECTIONS`, default 32; `BENCH_NO_CONTEXT=1` drops the
//! request-context middleware from the `me` server to show the identity
//! path's own cost apart from the shared per-request logging).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use diesel::sql_types::Text;
use galaxy_auth::{AuthService, AuthSettings, PgAuthService};
use galaxy_core::{RequestContext, UserSessionResolver};
use galaxy_geo::CountryCounters;
use galaxy_testdb::TestDb;
use galaxy_user::{PgUserService, UserService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WORKERS: usize = 2;

/// Binds an actix server built by `$factory` to a free loopback port with
/// [`WORKERS`] workers, runs it on the current runtime and gives its address.
macro_rules! serve {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .workers(WORKERS)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("bind a loopback port");
        let addr = server.addrs()[0];
        tokio::spawn(server.run());
        addr
    }};
}

async fn bare() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"ok":true}"#)
}

/// One keep-alive connection: send, read one full response, repeat.
async fn drive(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        conn.write_all(&request).await.expect("write");
        let mut filled = 0;
        loop {
            let n = conn.read(&mut buf[filled..]).await.expect("read");
            assert!(n > 0, "server closed the connection");
            filled += n;
            if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).expect("ascii head");
                assert!(
                    head.starts_with("HTTP/1.1 200"),
                    "unexpected response: {head}"
                );
                let len: usize = head
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Requests per second over `secs` with `conns` connections.
fn measure(addr: SocketAddr, request: Vec<u8>, conns: usize, secs: u64) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    rt.block_on(async move {
        let request = Arc::new(request);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        // Warm-up: connections open, caches hot.
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(drive(addr, request.clone(), stop.clone(), done.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start_count = done.load(Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let n = done.load(Ordering::Relaxed) - start_count;
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        n as f64 / elapsed
    })
}

fn request(path: &str, token: Option<&str>) -> Vec<u8> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nX-Forwarded-For: 81.2.69.142\r\n{auth}\r\n")
        .into_bytes()
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let conns: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    // The real log layer, to a sink: the access line is built per request as
    // in production, without measuring a terminal.
    galaxy_telemetry::init("info", std::io::sink).expect("subscriber");

    let db = TestDb::new();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");

    let (token, me_addr, bare_addr) = server_rt.block_on(async {
        let users = Arc::new(PgUserService::new(db.pool()));
        let auth = Arc::new(PgAuthService::new(
            db.pool(),
            users.clone(),
            CountryCounters::new(galaxy_geo::fixture::open()),
            // the defaults, with short-lived sessions
            AuthSettings {
                session_ttl: Duration::from_secs(3600),
                session_retention: Duration::from_secs(86400),
                ..AuthSettings::from_env(&galaxy_core::env::Env::default()).unwrap()
            },
        ));
        users.warm().await.unwrap();
        auth.warm().await.unwrap();
        let (challenge, _) = auth.request_code("bench@example.test", None).await.unwrap();
        #[derive(diesel::QueryableByName)]
        struct Body {
            #[diesel(sql_type = Text)]
            body_text: String,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = db.pool().get().await.unwrap();
        let mail: Body = diesel::sql_query("SELECT body_text FROM mail_deliveries")
            .get_result(&mut conn)
            .await
            .unwrap();
        let code = mail
            .body_text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_owned();
        let token = auth
            .verify(challenge, &code, None, None)
            .await
            .unwrap()
            .token;

        let users_dyn: Arc<dyn UserService> = users.clone();
        let resolver: Arc<dyn UserSessionResolver> = auth.clone();
        let plain = std::env::var("BENCH_NO_CONTEXT").is_ok();
        let me_addr = serve!(move || {
            App::new()
                .wrap(actix_web::middleware::Condition::new(
                    !plain,
                    RequestContext,
                ))
                .configure(galaxy_core::http::configure_extractors)
                .app_data(web::Data::from(resolver.clone()))
                .configure(|cfg| galaxy_user::configure(cfg, users_dyn.clone()))
        });
        let bare_addr = serve!(|| App::new().route("/bare", web::get().to(bare)));
        (token, me_addr, bare_addr)
    });

    // Keep the servers' runtime turning on its own thread while the client
    // runs on another runtime.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        server_rt.block_on(async {
            while stop_rx.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    });

    // Alternate the two twice so drift on a shared machine hits both alike.
    let mut bare_rates = Vec::new();
    let mut me_rates = Vec::new();
    for _ in 0..2 {
        bare_rates.push(measure(bare_addr, request("/bare", None), conns, secs));
        me_rates.push(measure(
            me_addr,
            request("/api/v1/user/me", Some(&token)),
            conns,
            secs,
        ));
    }
    let bare = bare_rates.iter().sum::<f64>() / bare_rates.len() as f64;
    let me = me_rates.iter().sum::<f64>() / me_rates.len() as f64;
    println!("connections: {conns}, duration: {secs}s x2 each, server workers: {WORKERS}");
    println!("bare handler      : {bare:>10.0} req/s  (runs: {bare_rates:.0?})");
    println!("GET /api/v1/user/me: {me:>10.0} req/s  (runs: {me_rates:.0?})");
    println!("ratio me/bare     : {:.3} (goal >= 0.9)", me / bare);
    let _ = stop_tx.send(());
    let _ = server_thread.join();
}
