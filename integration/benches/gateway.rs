//! The gateway's figures (issue 11), each beside its anchor in the same run:
//!
//! - `me`: authenticated `GET /api/v1/user/me` through the gateway against
//!   straight to the backend, alternated in rounds (goal ≥ 0.5 of direct);
//! - `sockets`: idle authenticated sockets held, gateway RSS per socket and
//!   idle CPU (goal 40,000 at ≤ 16 KiB each, near-zero CPU);
//! - `fanout`: one event to each of 10,000 sockets, submit → last frame
//!   (goal p99 ≤ 250 ms);
//! - `latency`: submit → frame on one player's socket over 1,000 events,
//!   with 1,000 other players connected (goal p99 ≤ 50 ms).
//!
//! Events are submitted through the real notification service (the intent
//! and its routes written to PostgreSQL, then pushed over the real gRPC
//! push stream the gateway subscribes to); token checks go to a real
//! backend process. Uses the release binaries:
//!
//! ```text
//! cargo build --release -p galaxy-backend -p galaxy-gateway-bin
//! cargo bench -p galaxy-integration --bench gateway            # all
//! cargo bench -p galaxy-integration --bench gateway -- sockets # one
//! ```
//! `BENCH_SOCKETS` (default 40000), `BENCH_SECONDS` (default 3 per round).
//! `sockets` spreads its sockets over as many gateways (and client
//! processes) as the per-process open-file limit requires
//! (`BENCH_SOCKETS_PER_GATEWAY` overrides the share).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]
// Printing the figures is this program's whole output.
#![allow(clippy::print_stdout)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use galaxy_integration::load::{me_rate, median, percentile, seed_sessions, token};
use galaxy_integration::{Backend, BackendBuilder, Gateway, GatewayBuilder};
use galaxy_notification::{
    Intent, NotificationService, NotificationSettings, PgNotificationService, PushGrpc, PushHub,
    RecipientDirectory,
};
use galaxy_testdb::TestDb;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{Message, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PUSH_TOKEN: &str = "bench-push-token-0123456789";

struct NoEmail;
impl RecipientDirectory for NoEmail {
    fn email(&self, _: Uuid) -> Option<String> {
        None
    }
}

struct Stack {
    db: TestDb,
    accounts: Vec<Uuid>,
    backend: Backend,
    gateway: Gateway,
    notifications: Arc<PgNotificationService>,
    _push: CancellationToken,
}

async fn stack(accounts: usize, gateway_env: &[(&str, &str)]) -> Stack {
    let db = TestDb::new();
    let ids = seed_sessions(&db, accounts).await;
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_PUSH_TOKEN", PUSH_TOKEN)
        .env("RUST_LOG", "warn")
        .spawn();
    backend.wait_ready(Duration::from_secs(60)).await;

    // The notification service, as the backend composes it, serving the
    // push stream the gateway subscribes to.
    let hub = PushHub::new();
    let notifications = Arc::new(PgNotificationService::new(
        db.pool(),
        Arc::clone(&hub),
        Arc::new(NoEmail),
        NotificationSettings::new(Duration::from_secs(3600), 8, None),
    ));
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let push_addr = listener.local_addr().unwrap();
    let server = PushGrpc::new(Arc::clone(&hub), &[PUSH_TOKEN], shutdown.clone()).into_server();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stop.cancelled_owned(),
            )
            .await
            .unwrap();
    });

    let mut builder = GatewayBuilder::new(&[&backend])
        .env("GATEWAY_BACKEND_GRPC_ADDR", push_addr.to_string())
        .env("GATEWAY_AUTH_RATE_LIMIT", "100000000/1s")
        .env("RUST_LOG", "warn");
    for (k, v) in gateway_env {
        builder = builder.env(k, *v);
    }
    // `BENCH_GATEWAY_ENV=K=V,K=V`: extra settings for the gateway under test.
    for pair in std::env::var("BENCH_GATEWAY_ENV")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((k, v)) = pair.split_once('=') {
            builder = builder.env(k.trim(), v.trim());
        }
    }
    let mut gateway = builder.spawn();
    gateway.wait_ready(Duration::from_secs(30)).await;
    Stack {
        db,
        accounts: ids,
        backend,
        gateway,
        notifications,
        _push: shutdown,
    }
}

/// File descriptors for tens of thousands of sockets, for this process and
/// the gateway it starts (children inherit the limit).
fn raise_fd_limit() {
    let ok = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            "--nofile=1048576:1048576",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!(
            "warning: could not raise the open-file limit (prlimit); large socket counts will fail"
        );
    }
}

// ---------------------------------------------------------------- me

async fn bench_me() {
    let s = stack(8, &[]).await;
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        direct.push(me_rate(&[s.backend.http], &token(0), 32, seconds).await);
        via.push(me_rate(&[s.gateway.http], &token(0), 32, seconds).await);
    }
    let (v, d) = (median(via.clone()), median(direct.clone()));
    println!("me: direct rounds {direct:.0?} req/s; via gateway rounds {via:.0?} req/s");
    println!(
        "me: median direct {d:.0} req/s, via gateway {v:.0} req/s, ratio {:.2} (goal >= 0.5)",
        v / d
    );
}

// ---------------------------------------------------------------- sockets

/// Frames seen by the bench's sockets: (socket number, arrival).
type Arrivals = mpsc::UnboundedSender<(usize, Instant)>;

/// Opens the sockets numbered `sockets` to the gateway at `addr`,
/// `per_account` per account (socket `i` signs in as account
/// `i / per_account`), spread over 127.0.1.x source addresses by number
/// (one address has ~28k ephemeral ports).
async fn open_sockets(
    addr: SocketAddr,
    sockets: std::ops::Range<usize>,
    per_account: usize,
    arrivals: Arrivals,
) -> usize {
    let opened = Arc::new(AtomicU64::new(0));
    futures_util::stream::iter(sockets)
        .for_each_concurrent(128, |i| {
            let (arrivals, opened) = (arrivals.clone(), Arc::clone(&opened));
            async move {
                let local = Ipv4Addr::new(127, 0, 1, u8::try_from(1 + i / 20_000).unwrap());
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(SocketAddr::from((local, 0))).unwrap();
                let stream = match sock.connect(addr).await {
                    Ok(s) => s,
                    Err(e) => return println!("connect {i}: {e}"),
                };
                let req = format!("ws://{addr}/api/v1/push?token={}", token(i / per_account))
                    .into_client_request()
                    .unwrap();
                let config = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(0);
                let (mut ws, _) =
                    match tokio_tungstenite::client_async_with_config(req, stream, Some(config))
                        .await
                    {
                        Ok(ws) => ws,
                        Err(e) => return println!("upgrade {i}: {e}"),
                    };
                opened.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    while let Some(Ok(msg)) = ws.next().await {
                        if matches!(msg, Message::Text(ref t) if t.as_str().contains("\"event\"")) {
                            let _receiver_gone = arrivals.send((i, Instant::now()));
                        }
                    }
                });
            }
        })
        .await;
    usize::try_from(opened.load(Ordering::Relaxed)).unwrap()
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

/// Sockets one gateway is given: what its open-file limit (the same as
/// this process's, which it inherits) leaves after its own files.
fn sockets_per_process() -> usize {
    let limit = proc_field(std::process::id(), "limits", "Max open files")
        .try_into()
        .unwrap_or(usize::MAX);
    std::env::var("BENCH_SOCKETS_PER_GATEWAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| limit.saturating_sub(1_000).max(1_000))
}

/// One client process: opens its sockets (`BENCH_CLIENT_*`), prints
/// `opened N`, then holds them until its standard input closes. The
/// parent runs one per gateway, so no process needs more files than the
/// machine's per-process limit allows.
async fn sockets_client() {
    use tokio::io::AsyncReadExt as _;
    let var = |name: &str| -> usize { std::env::var(name).unwrap().parse().unwrap() };
    let addr: SocketAddr = std::env::var("BENCH_CLIENT_ADDR").unwrap().parse().unwrap();
    let first = var("BENCH_CLIENT_FIRST");
    let (tx, _rx) = mpsc::unbounded_channel();
    let opened = open_sockets(
        addr,
        first..first + var("BENCH_CLIENT_COUNT"),
        var("BENCH_CLIENT_PER_ACCOUNT"),
        tx,
    )
    .await;
    println!("opened {opened}");
    let mut rest = Vec::new();
    let _eof = tokio::io::stdin().read_to_end(&mut rest).await;
}

/// Starts a client process for `count` sockets from number `first` on the
/// gateway at `addr`; returns it and the sockets it opened.
async fn spawn_client(
    addr: SocketAddr,
    first: usize,
    count: usize,
    per_account: usize,
) -> (tokio::process::Child, usize) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg("sockets-client")
        .env("BENCH_CLIENT_ADDR", addr.to_string())
        .env("BENCH_CLIENT_FIRST", first.to_string())
        .env("BENCH_CLIENT_COUNT", count.to_string())
        .env("BENCH_CLIENT_PER_ACCOUNT", per_account.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut opened = 0;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(n) = line.strip_prefix("opened ") {
            opened = n.parse().unwrap();
            break;
        }
        println!("client: {line}");
    }
    (child, opened)
}

async fn bench_sockets() {
    const PER_ACCOUNT: usize = 8;
    let target: usize = std::env::var("BENCH_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    // One gateway holds at most what one process may open; beyond that
    // the sockets are spread over as many gateways as it takes, each with
    // its own client process, all on this machine's two cores.
    let per_process = sockets_per_process();
    let count = target.div_ceil(per_process);
    let share = target.div_ceil(count);
    let Stack {
        db: _db,
        backend: _backend,
        gateway,
        _push,
        ..
    } = stack(target.div_ceil(PER_ACCOUNT), &[]).await;
    let mut gateways: Vec<Gateway> = (1..count)
        .map(|n| {
            gateway
                .same_env()
                .env(
                    "GATEWAY_HTTP_LISTEN_ADDR",
                    format!("127.0.0.1:{}", galaxy_integration::free_port()),
                )
                .env("GATEWAY_ID", format!("gw-bench-{n}"))
                .spawn()
        })
        .collect();
    gateways.insert(0, gateway);
    for g in &mut gateways {
        g.wait_ready(Duration::from_secs(30)).await;
    }
    let rss_before: Vec<u64> = gateways
        .iter()
        .map(|g| proc_field(g.pid(), "status", "VmRSS:"))
        .collect();
    let t0 = Instant::now();
    let clients = futures_util::future::join_all(gateways.iter().enumerate().map(|(n, g)| {
        let first = n * share;
        spawn_client(g.http, first, share.min(target - first), PER_ACCOUNT)
    }))
    .await;
    let open_time = t0.elapsed();
    let opened: usize = clients.iter().map(|(_, n)| n).sum();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after: Vec<u64> = gateways
        .iter()
        .map(|g| proc_field(g.pid(), "status", "VmRSS:"))
        .collect();
    let ticks0: Vec<u64> = gateways.iter().map(|g| cpu_ticks(g.pid())).collect();
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let ticks: u64 = gateways
        .iter()
        .zip(&ticks0)
        .map(|(g, t0)| cpu_ticks(g.pid()) - t0)
        .sum();
    for (n, ((g, (_, held)), (before, after))) in gateways
        .iter()
        .zip(&clients)
        .zip(rss_before.iter().zip(&rss_after))
        .enumerate()
    {
        println!(
            "gateway {n} (pid {}): {held} sockets, RSS {before} -> {after} KiB ({:.1} KiB per socket)",
            g.pid(),
            after.saturating_sub(*before) as f64 / (*held).max(1) as f64
        );
    }
    let grown: u64 = rss_after
        .iter()
        .zip(&rss_before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum();
    println!(
        "sockets: {opened} of {target} open in {:.1} s over {count} gateway(s) of at most {per_process} each \
         (the per-process open-file limit); gateway RSS {:.1} KiB per socket (goal <= 16); \
         idle CPU of all gateways {:.1}% of one core over {idle:?} (ticks at 100/s)",
        open_time.as_secs_f64(),
        grown as f64 / opened.max(1) as f64,
        ticks as f64 / idle.as_secs_f64(),
    );
    for (mut child, _) in clients {
        drop(child.stdin.take());
        let _ = child.wait().await;
    }
}

// ---------------------------------------------------------------- fan-out and latency

fn intent(recipients: Vec<Uuid>) -> Intent {
    Intent {
        kind: galaxy_notification::LOBBY_GAME_STARTED.to_owned(),
        idempotency_key: Uuid::new_v4().to_string(),
        payload: serde_json::json!({"game_id": Uuid::new_v4().to_string(), "game_name": "Bench"}),
        recipients,
    }
}

async fn bench_fanout() {
    const N: usize = 10_000;
    let s = stack(N, &[]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let opened = open_sockets(s.gateway.http, 0..N, 1, tx).await;
    assert_eq!(opened, N, "every socket opened");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A second subscriber beside the gateway's stream: when the backend's
    // side (submit, routes written, event published) is done, apart from
    // the gateway's fan-out.
    let mut probe = s.notifications.hub().subscribe("bench-probe");
    let (published_tx, mut published) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(_)) = probe.recv().await {
            if published_tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    for round in 0..3 {
        let t0 = Instant::now();
        let submits: Vec<_> = s
            .accounts
            .chunks(galaxy_notification::MAX_RECIPIENTS)
            .map(|chunk| {
                let svc = Arc::clone(&s.notifications);
                let intent = intent(chunk.to_vec());
                tokio::spawn(async move { svc.submit(intent).await.unwrap() })
            })
            .collect();
        let mut latencies = Vec::with_capacity(N);
        while latencies.len() < N {
            let (_, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("every socket gets its frame")
                .unwrap();
            latencies.push(at - t0);
        }
        for sub in submits {
            sub.await.unwrap();
        }
        let mut emitted = Vec::with_capacity(N);
        while emitted.len() < N {
            emitted.push(published.recv().await.unwrap() - t0);
        }
        emitted.sort();
        latencies.sort();
        println!(
            "fanout round {round}: {N} sockets, submit -> frame p50 {:?}, p99 {:?}, last {:?} (goal p99 <= 250 ms); \
             backend side, submit -> event published: p50 {:?}, p99 {:?}, last {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[N - 1],
            percentile(&emitted, 0.5),
            percentile(&emitted, 0.99),
            emitted[N - 1]
        );
    }
    drop(s.db);
}

async fn bench_latency() {
    const OTHERS: usize = 1_000;
    const EVENTS: usize = 1_000;
    let s = stack(OTHERS + 1, &[]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    assert_eq!(
        open_sockets(s.gateway.http, 0..OTHERS + 1, 1, tx).await,
        OTHERS + 1
    );
    let player = s.accounts[OTHERS];
    // Warm the pooled connections' prepared statements.
    for _ in 0..20 {
        s.notifications.submit(intent(vec![player])).await.unwrap();
        rx.recv().await.unwrap();
    }
    let mut latencies = Vec::with_capacity(EVENTS);
    for _ in 0..EVENTS {
        let t0 = Instant::now();
        s.notifications.submit(intent(vec![player])).await.unwrap();
        let (socket, at) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the frame arrives")
            .unwrap();
        assert_eq!(socket, OTHERS);
        latencies.push(at - t0);
    }
    latencies.sort();
    println!(
        "latency: {EVENTS} events to one player ({OTHERS} others connected): submit -> frame p50 {:?}, p99 {:?} (goal p99 <= 50 ms)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

fn main() {
    raise_fd_limit();
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let want = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    runtime.block_on(async {
        // A child of `sockets`, not a bench of its own.
        if which.iter().any(|w| w == "sockets-client") {
            return sockets_client().await;
        }
        if want("me") {
            bench_me().await;
        }
        if want("latency") {
            bench_latency().await;
        }
        if want("fanout") {
            bench_fanout().await;
        }
        if want("sockets") {
            bench_sockets().await;
        }
    });
}
