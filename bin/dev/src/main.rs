//! `cargo stack`: everything a newcomer needs on one machine.
//!
//! Builds the workspace binaries, starts a private PostgreSQL from the local
//! server binaries, then the backend with development defaults, and prints
//! where everything is. Ctrl-C stops it all; the database goes with it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use galaxy_testdb::PrivateServer;

mod engines;

const HTTP_PORT: u16 = 8080;
const GRPC_PORT: u16 = 9090;

// The launcher talks to a person on its terminal.
#[allow(clippy::print_stdout)]
fn main() -> anyhow::Result<()> {
    let target_dir = build_binaries()?;
    eprintln!("starting a private PostgreSQL …");
    let postgres = PrivateServer::start();
    let dsn = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?search_path=backend",
        postgres.port()
    );
    // The project's own GeoIP fixture: answers the documented test
    // addresses (e.g. `X-Forwarded-For: 81.2.69.142` → GB); removed on exit.
    let stack_dir = std::env::temp_dir().join(format!("galaxy-stack-{}", std::process::id()));
    std::fs::create_dir_all(&stack_dir).context("create the stack's temp dir")?;
    let _stack_dir_guard = RemoveDirOnDrop(stack_dir.clone());
    let geoip_path = stack_dir.join("GeoLite2-Country-fixture.mmdb");
    galaxy_geo::fixture::write(&geoip_path).context("write the GeoIP fixture")?;
    // The SMTP sink: a real SMTP server on loopback that prints every mail
    // (sign-in codes included) to this terminal instead of delivering it.
    let smtp = galaxy_testsmtp::SmtpServer::builder()
        .on_message(print_mail)
        .start()
        .context("start the SMTP sink")?;
    let admin_password = hex::encode(rand::random::<[u8; 12]>());
    let push_token = hex::encode(rand::random::<[u8; 24]>());
    let engines = engines::Engines::prepare()?;
    let network = engines
        .as_ref()
        .map_or_else(|| "galaxy-engines".to_owned(), |e| e.network.clone());

    let mut backend = Command::new(target_dir.join("galaxy-backend"))
        .env("BACKEND_HTTP_LISTEN_ADDR", format!("127.0.0.1:{HTTP_PORT}"))
        .env("BACKEND_GRPC_LISTEN_ADDR", format!("127.0.0.1:{GRPC_PORT}"))
        .env("BACKEND_POSTGRES_DSN", &dsn)
        .env("BACKEND_PUSH_TOKEN", &push_token)
        .env("BACKEND_SMTP_HOST", "127.0.0.1")
        .env("BACKEND_SMTP_PORT", smtp.port().to_string())
        .env("BACKEND_SMTP_TLS_MODE", "none")
        .env("BACKEND_SMTP_FROM", "galaxy@localhost.localdomain")
        .env("BACKEND_GEOIP_DB_PATH", &geoip_path)
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", &admin_password)
        .env("BACKEND_OTEL_TRACES_EXPORTER", "none")
        .env("BACKEND_OTEL_METRICS_EXPORTER", "none")
        .env("BACKEND_DOCKER_NETWORK", &network)
        .env("BACKEND_RUNTIME_RECONCILE_INTERVAL", "10s")
        .stdin(Stdio::null())
        .spawn()
        .context("start galaxy-backend")?;

    wait_for_port(HTTP_PORT, &mut backend)?;
    let engine_line = match &engines {
        Some(e) => {
            e.register(HTTP_PORT, &admin_password)?;
            format!(
                "engine version `{}` → {} on Docker network {}",
                engines::VERSION,
                engines::IMAGE,
                e.network
            )
        }
        None => "no Docker daemon: games cannot start".to_owned(),
    };
    println!(
        "\nGalaxy local stack is up\n\
         \x20 backend HTTP   http://127.0.0.1:{HTTP_PORT}  (probes: /healthz /readyz, API: /api/v1, OpenAPI: /api/v1/openapi.json)\n\
         \x20 backend gRPC   127.0.0.1:{GRPC_PORT}  (push token: {push_token})\n\
         \x20 PostgreSQL     {dsn}\n\
         \x20 SMTP sink      127.0.0.1:{smtp_port}  (every mail is printed here, e.g. sign-in codes)\n\
         \x20 GeoIP          {geoip}  (test fixture: 81.2.69.142 → GB, 2001:db8::1 → DE)\n\
         \x20 engines        {engine_line}\n\
         \x20 bootstrap admin  user: admin  password: {admin_password}\n\
         Press Ctrl-C to stop everything.\n",
        geoip = geoip_path.display(),
        smtp_port = smtp.port()
    );

    let outcome = wait_for_signal_or_exit(&mut backend);
    eprintln!("stopping …");
    terminate(&mut backend);
    drop(engines);
    drop(postgres);
    outcome
}

/// Prints one mail the backend sent: envelope, the headers a person reads,
/// and the text body.
#[allow(clippy::print_stdout)]
fn print_mail(m: &galaxy_testsmtp::Received) {
    let header = |name: &str| m.header(name).unwrap_or_default();
    println!(
        "\n──── mail ──────────────────────────────────────────\n\
         From:    {}\nTo:      {}\nSubject: {}\n\n{}\n────────────────────────────────────────────────────",
        header("From"),
        m.to.join(", "),
        header("Subject"),
        m.body().replace("\r\n", "\n").trim_end()
    );
}

/// Removes the stack's temp dir on every way out of `main`.
struct RemoveDirOnDrop(PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cargo build --bins` with the cargo that runs us, so the binaries are fresh.
fn build_binaries() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--bins"])
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --bins failed");
    }
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("target dir")?.to_path_buf())
}

fn wait_for_port(port: u16, child: &mut Child) -> anyhow::Result<()> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("process exited before listening on {port}: {status}");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("nothing listens on {port} after 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Returns on SIGINT/SIGTERM (Ok) or when the backend exits by itself (Err).
fn wait_for_signal_or_exit(backend: &mut Child) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if let Some(status) = backend.try_wait()? {
                        bail!("galaxy-backend exited: {status}");
                    }
                }
            }
        }
    })
}
