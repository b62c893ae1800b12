use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::process::Process;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Path of a workspace binary built beside the running test executable.
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// A free loopback port for a process a test starts.
///
/// Taken below the kernel's ephemeral range: a port the kernel hands out
/// (`bind :0`) is also what every outgoing connection of the suite — to
/// PostgreSQL, to the backends — takes for its own end, so a port picked
/// that way could be taken again before the child binds it (seen in CI as
/// "Address already in use"). Below the range only a listener can take it,
/// and each test process walks its own sequence, checked by a bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    const LOW: u32 = 10_000;
    if ephemeral_low < LOW + 2_000 {
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
    }
    let span = ephemeral_low - LOW;
    // Processes start far apart in the range, then count up.
    let start = std::process::id().wrapping_mul(7_919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free loopback port below {ephemeral_low}");
        let port = u16::try_from(LOW + start.wrapping_add(n) % span).expect("a port number");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The project's GeoIP fixture (`galaxy_geo::fixture`) as a file: written
/// once per test process, the default `BACKEND_GEOIP_DB_PATH`.
///
/// The bytes are reproducible, so the file is named after their checksum and
/// shared by every test process: one file in the temp dir, however many runs,
/// written under a private name and renamed into place so no process ever
/// reads a half-written one.
pub fn geoip_fixture() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bytes = galaxy_geo::fixture::bytes().expect("build the GeoIP fixture");
        // FNV-1a: only names the file, no security meaning.
        let sum = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let path = std::env::temp_dir().join(format!("galaxy-geoip-fixture-{sum:016x}.mmdb"));
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            let partial = path.with_extension(format!("{}.partial", std::process::id()));
            std::fs::write(&partial, &bytes).expect("write the GeoIP fixture");
            std::fs::rename(&partial, &path).expect("move the GeoIP fixture into place");
        }
        path
    })
}

/// Environment for a backend process; defaults suit a test.
pub struct BackendBuilder {
    env: BTreeMap<String, String>,
}

impl BackendBuilder {
    /// A backend on `dsn` with free ports and short worker intervals.
    pub fn new(dsn: &str) -> Self {
        let mut env = BTreeMap::new();
        for (k, v) in [
            (
                "BACKEND_HTTP_LISTEN_ADDR",
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "BACKEND_GRPC_LISTEN_ADDR",
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "BACKEND_PUSH_TOKEN",
                "test-push-token-0123456789".to_owned(),
            ),
            ("BACKEND_POSTGRES_DSN", dsn.to_owned()),
            ("BACKEND_SMTP_HOST", "127.0.0.1".to_owned()),
            ("BACKEND_SMTP_PORT", free_port().to_string()),
            ("BACKEND_SMTP_TLS_MODE", "none".to_owned()),
            ("BACKEND_SMTP_FROM", "galaxy@example.test".to_owned()),
            (
                "BACKEND_GEOIP_DB_PATH",
                geoip_fixture().display().to_string(),
            ),
            ("BACKEND_OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("BACKEND_OTEL_METRICS_EXPORTER", "none".to_owned()),
            ("BACKEND_SHUTDOWN_TIMEOUT", "5s".to_owned()),
            ("BACKEND_DOCKER_NETWORK", unique_network_name()),
            ("RUST_LOG", "info".to_owned()),
        ] {
            env.insert(k.to_owned(), v);
        }
        Self { env }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    /// Traces and metrics both exported by `exporter` (`otlp`, `stdout` or
    /// `none`), spans flushed every 100 ms and metrics every
    /// `metric_interval_ms`, so a test sees them soon after its requests.
    pub fn exporting(self, exporter: &str, metric_interval_ms: u32) -> Self {
        self.env("BACKEND_OTEL_TRACES_EXPORTER", exporter)
            .env("BACKEND_OTEL_METRICS_EXPORTER", exporter)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env(
                "OTEL_METRIC_EXPORT_INTERVAL",
                metric_interval_ms.to_string(),
            )
    }

    pub fn without(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Runs `galaxy-backend <args>` to completion: (status, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run galaxy-backend");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary_path("galaxy-backend"));
        cmd.args(args).env_clear();
        // Keep PATH/HOME/TMPDIR so the process behaves like a deployed one.
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(&self.env);
        cmd
    }

    /// Starts `galaxy-backend serve`, capturing its output.
    pub fn spawn(self) -> Backend {
        docker_cli();
        let process = Process::spawn("backend", self.command(&["serve"]));
        network_acquire(&self.env["BACKEND_DOCKER_NETWORK"]);
        let http: SocketAddr = self.env["BACKEND_HTTP_LISTEN_ADDR"].parse().expect("addr");
        let grpc: SocketAddr = self.env["BACKEND_GRPC_LISTEN_ADDR"].parse().expect("addr");
        Backend {
            process,
            http,
            grpc,
            client: reqwest::Client::new(),
            builder_env: self.env,
        }
    }
}

/// Each builder gets its own engine network, so parallel tests never see
/// (or reconcile away) each other's engine containers.
fn unique_network_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "galaxy-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live backends per engine network (a restarted backend shares its network).
fn networks() -> &'static Mutex<BTreeMap<String, usize>> {
    static NETWORKS: std::sync::OnceLock<Mutex<BTreeMap<String, usize>>> =
        std::sync::OnceLock::new();
    NETWORKS.get_or_init(Default::default)
}

fn network_acquire(name: &str) {
    *networks()
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_default() += 1;
}

/// The last backend using a network removes it (the backend creates it at
/// boot when a Docker daemon answers; without one this is a no-op).
fn network_release(name: &str) {
    let mut map = networks().lock().unwrap();
    let last = match map.get_mut(name) {
        Some(n) => {
            *n -= 1;
            *n == 0
        }
        None => false,
    };
    if last {
        map.remove(name);
        drop(map);
        if docker_cli() {
            remove_network(name);
        }
    }
}

/// Whether a Docker CLI answers (without one there is nothing to clean).
fn docker_cli() -> bool {
    static PRESENT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PRESENT.get_or_init(|| {
        let present = Command::new("docker")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if present {
            // Once per test process: what killed runs left behind.
            crate::testenv::sweep_dead_owners();
        }
        present
    })
}

/// Removes an engine network with the engines still on it. A backend killed
/// while its network create was in flight can see that create land after
/// the first removal, so the network is looked for once more.
fn remove_network(name: &str) {
    for _ in 0..3 {
        crate::testenv::remove_stack(name, name, &[]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let still = Command::new("docker")
            .args(["network", "inspect", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !still {
            return;
        }
    }
    eprintln!("integration: engine network {name} could not be removed");
}

/// A running backend process; killed on drop.
pub struct Backend {
    process: Process,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub client: reqwest::Client,
    builder_env: BTreeMap<String, String>,
}

impl Backend {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn env(&self, key: &str) -> Option<&str> {
        self.builder_env.get(key).map(String::as_str)
    }

    /// A builder with the same environment (to restart on the same ports).
    pub fn same_env(&self) -> BackendBuilder {
        BackendBuilder {
            env: self.builder_env.clone(),
        }
    }

    /// Stdout lines so far (JSON log lines).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.process.stdout_lines()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.process.stderr_lines()
    }

    /// Parsed JSON log lines so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.process.logs()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// The JSON body of an unauthenticated `GET path`, whatever its status.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.expect("a JSON body")
    }

    /// Status of `GET path`, or None while nothing answers.
    pub async fn status_of(&self, path: &str) -> Option<u16> {
        status_of(&self.client, &self.url(path)).await
    }

    /// Waits until `/readyz` answers 200, panicking (with the logs) after `limit`.
    pub async fn wait_ready(&mut self, limit: Duration) -> Duration {
        let url = self.url("/readyz");
        wait_ready(&mut self.process, &self.client, &url, limit).await
    }

    /// Waits until one of the process's log lines satisfies `matches`,
    /// panicking (with the logs) after `limit`.
    pub async fn wait_for_log(
        &self,
        limit: Duration,
        what: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) {
        self.eventually(limit, what, || async { self.logs().iter().any(&matches) })
            .await;
    }

    /// Polls `cond` every 50 ms until it holds or `limit` passes.
    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        crate::process::eventually(limit, what, || self.dump(), cond).await;
    }

    /// Sends SIGTERM and waits for the exit status (bounded by `limit`).
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.process.terminate(limit)
    }

    /// `kill -9`: no destructors, no shutdown path.
    pub fn kill_hard(&mut self) {
        self.process.kill_hard();
    }

    pub fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        self.process.wait_exit(limit)
    }

    /// The captured output, for failure messages.
    pub fn dump(&self) -> String {
        self.process.dump()
    }
}

/// Status of `GET url`, or None while nothing answers.
pub(crate) async fn status_of(client: &reqwest::Client, url: &str) -> Option<u16> {
    client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Waits until `ready_url` answers 200; panics with the output after `limit`
/// or when the process exits first.
pub(crate) async fn wait_ready(
    process: &mut Process,
    client: &reqwest::Client,
    ready_url: &str,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if status_of(client, ready_url).await == Some(200) {
            return started.elapsed();
        }
        if let Some(status) = process.exited() {
            panic!("exited with {status} before ready:\n{}", process.dump());
        }
        assert!(
            started.elapsed() < limit,
            "not ready within {limit:?}:\n{}",
            process.dump()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.process.kill_hard();
        if let Some(network) = self.builder_env.get("BACKEND_DOCKER_NETWORK") {
            network_release(network);
        }
    }
}
