//! The container integration suite's stack (runbook, *Integration test
//! suite*): `testenv::bootstrap().await` boots, for one scenario, the shipped
//! images — backend and gateway from `galaxy/*:integration`, engines from
//! `galaxy/game:integration` — against the scenario's own database
//! (galaxy-testdb) and SMTP server (galaxy-testsmtp), on its own Docker
//! network with its own container names, so scenarios run in parallel.
//!
//! - The images are built by deploy/build-images.sh when one is missing
//!   (`docker rmi` forces a rebuild); nothing is ever pulled.
//! - The network is also the backend's engine network: the backend joins it
//!   and reaches engines by container address; the gateway reaches the
//!   backend by its container name (Docker's DNS, through the image's NSS).
//! - PostgreSQL and SMTP are host servers reached at the network's gateway
//!   address as `galaxy-host` (PostgreSQL through a forwarder: it listens on
//!   loopback only).
//! - The backend container runs as uid 0 with the Docker socket mounted.
//! - A failing scenario prints both containers' logs; on drop, also after a
//!   panic, every container, network and volume of the stack is removed; at
//!   start, leftovers of test processes that died are swept.

mod compose;
mod container;
mod docker;
mod forward;
mod images;

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use galaxy_testdb::TestDb;
use galaxy_testsmtp::SmtpServer;
use serde_json::{Value, json};

pub use compose::{ComposeStack, interpolate};
pub use container::Container;
use container::Spec;
pub use docker::{OWNER_LABEL, docker, must};
pub(crate) use docker::{remove_stack, sweep_dead_owners};
use forward::Forwarder;
pub use images::{BACKEND, GAME, GATEWAY, ensure as ensure_images};

use crate::api::{json_of, sign_in_at};
use crate::{free_port, geoip_fixture};

pub const PUSH_TOKEN: &str = "testenv-push-token-0123456789";
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "testenv-admin-password";
/// The engine version every stack registers on `galaxy/game:integration`.
pub const ENGINE_VERSION: &str = "1.0.0";
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Boots a stack with the default settings.
pub async fn bootstrap() -> Stack {
    Options::default().boot().await
}

/// Settings a scenario changes before booting.
#[derive(Default)]
pub struct Options {
    backend_env: BTreeMap<String, String>,
    gateway_env: BTreeMap<String, String>,
}

impl Options {
    pub fn backend_env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.backend_env.insert(key.to_owned(), value.into());
        self
    }

    pub fn gateway_env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.gateway_env.insert(key.to_owned(), value.into());
        self
    }

    pub async fn boot(self) -> Stack {
        images::ensure();
        docker::sweep_dead_owners();
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "galaxy-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let owner = format!("{OWNER_LABEL}={}", std::process::id());
        let stack_label = format!("galaxy.testenv.stack={id}");
        must(&[
            "network",
            "create",
            "--label",
            &owner,
            "--label",
            &stack_label,
            &id,
        ]);
        let host_ip = gateway_address(&id);

        let db = TestDb::new();
        let smtp = SmtpServer::builder()
            .start_on(&format!("{host_ip}:0"))
            .expect("an SMTP server on the network's gateway address");
        let (forwarder, db_user, rest) = forward_database(&db, &host_ip);

        let backend_http = free_port();
        let mut backend_env: BTreeMap<String, String> = [
            ("BACKEND_HTTP_LISTEN_ADDR", "0.0.0.0:8080".to_owned()),
            ("BACKEND_GRPC_LISTEN_ADDR", "0.0.0.0:9090".to_owned()),
            ("BACKEND_PUSH_TOKEN", PUSH_TOKEN.to_owned()),
            (
                "BACKEND_POSTGRES_DSN",
                format!(
                    "postgres://{db_user}galaxy-host:{}/{rest}",
                    forwarder.addr.port()
                ),
            ),
            ("BACKEND_SMTP_HOST", "galaxy-host".to_owned()),
            ("BACKEND_SMTP_PORT", smtp.port().to_string()),
            ("BACKEND_SMTP_TLS_MODE", "none".to_owned()),
            ("BACKEND_SMTP_FROM", "galaxy@example.test".to_owned()),
            (
                "BACKEND_GEOIP_DB_PATH",
                "/var/lib/galaxy/geoip.mmdb".to_owned(),
            ),
            ("BACKEND_DOCKER_NETWORK", id.clone()),
            ("BACKEND_ADMIN_BOOTSTRAP_USER", ADMIN_USER.to_owned()),
            (
                "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
                ADMIN_PASSWORD.to_owned(),
            ),
            ("BACKEND_RUNTIME_IMAGE_PULL_POLICY", "never".to_owned()),
            ("BACKEND_RUNTIME_TURN_TICK_INTERVAL", "500ms".to_owned()),
            ("BACKEND_RUNTIME_RECONCILE_INTERVAL", "2s".to_owned()),
            ("BACKEND_RUNTIME_START_TIMEOUT", "30s".to_owned()),
            ("BACKEND_NOTIFICATION_WORKER_INTERVAL", "500ms".to_owned()),
            ("BACKEND_MAIL_WORKER_INTERVAL", "500ms".to_owned()),
            ("BACKEND_OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("BACKEND_OTEL_METRICS_EXPORTER", "none".to_owned()),
            ("BACKEND_SHUTDOWN_TIMEOUT", "5s".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        backend_env.extend(self.backend_env);
        let backend_spec = Spec {
            name: format!("{id}-backend"),
            image: BACKEND,
            stack: id.clone(),
            network: id.clone(),
            env: backend_env,
            args: [
                "--user",
                "0:0",
                "-v",
                "/var/run/docker.sock:/var/run/docker.sock",
                "-v",
                &format!(
                    "{}:/var/lib/galaxy/geoip.mmdb:ro",
                    geoip_fixture().display()
                ),
                "--add-host",
                &format!("galaxy-host:{host_ip}"),
                "-p",
                &format!("127.0.0.1:{backend_http}:8080"),
            ]
            .map(str::to_owned)
            .to_vec(),
            command: vec!["serve".to_owned()],
        };

        let gateway_http = free_port();
        let mut gateway_env: BTreeMap<String, String> = [
            ("GATEWAY_HTTP_LISTEN_ADDR", "0.0.0.0:8000".to_owned()),
            ("GATEWAY_BACKEND_URL", format!("http://{id}-backend:8080")),
            ("GATEWAY_BACKEND_GRPC_ADDR", format!("{id}-backend:9090")),
            ("GATEWAY_PUSH_TOKEN", PUSH_TOKEN.to_owned()),
            ("GATEWAY_ID", format!("{id}-gateway")),
            ("GATEWAY_OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("GATEWAY_OTEL_METRICS_EXPORTER", "none".to_owned()),
            ("GATEWAY_SHUTDOWN_TIMEOUT", "5s".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        gateway_env.extend(self.gateway_env);
        let gateway_spec = Spec {
            name: format!("{id}-gateway"),
            image: GATEWAY,
            stack: id.clone(),
            network: id.clone(),
            env: gateway_env,
            args: vec!["-p".to_owned(), format!("127.0.0.1:{gateway_http}:8000")],
            command: vec!["serve".to_owned()],
        };

        let mut stack = Stack {
            id,
            backend: Some(Container::run("backend", &backend_spec)),
            gateway: None,
            backend_spec,
            gateway_spec,
            backend_url: format!("http://127.0.0.1:{backend_http}"),
            gateway_url: format!("http://127.0.0.1:{gateway_http}"),
            client: reqwest::Client::new(),
            smtp,
            forwarder,
            db,
        };
        stack.wait_backend_ready().await;
        stack.gateway = Some(Container::run("gateway", &stack.gateway_spec));
        stack.wait_gateway_ready().await;
        stack
    }
}

/// The address containers on `network` reach the host at (its gateway).
fn gateway_address(network: &str) -> String {
    must(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        network,
    ])
    .trim()
    .to_owned()
}

/// A forwarder on `host_ip` to the test database (which listens on
/// loopback only), with the DSN's `user@` and `database?query` parts.
fn forward_database(db: &TestDb, host_ip: &str) -> (Forwarder, String, String) {
    let (db_host, rest) = dsn_host(&db.dsn());
    let target = db_host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .expect("the test database's address");
    (Forwarder::start(host_ip, target), db_user(&db.dsn()), rest)
}

/// `(host:port, database?query)` of a `postgres://user@host:port/db?q` DSN.
fn dsn_host(dsn: &str) -> (String, String) {
    let after_at = dsn.split_once('@').map_or(dsn, |(_, r)| r);
    let (host, rest) = after_at.split_once('/').expect("a DSN with a database");
    (host.to_owned(), rest.to_owned())
}

/// `user[:password]@` of a DSN (empty when it names no user).
fn db_user(dsn: &str) -> String {
    let no_scheme = dsn.split_once("://").map_or(dsn, |(_, r)| r);
    no_scheme
        .split_once('@')
        .map(|(user, _)| format!("{user}@"))
        .unwrap_or_default()
}

/// A booted stack. The gateway is the players' door (`url`); operators use
/// the backend's admin routes (`backend_url`, published on loopback for the
/// test only — compose publishes it nowhere).
pub struct Stack {
    pub id: String,
    backend: Option<Container>,
    gateway: Option<Container>,
    backend_spec: Spec,
    gateway_spec: Spec,
    pub backend_url: String,
    pub gateway_url: String,
    pub client: reqwest::Client,
    pub smtp: SmtpServer,
    forwarder: Forwarder,
    pub db: TestDb,
}

impl Stack {
    /// `path` through the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_url)
    }

    /// `ws://…path` through the gateway.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws{}{path}", self.gateway_url.trim_start_matches("http"))
    }

    /// `path` on the backend (the operator's side).
    pub fn backend(&self, path: &str) -> String {
        format!("{}{path}", self.backend_url)
    }

    /// The engine network (also the stack's network).
    pub fn network(&self) -> &str {
        &self.id
    }

    pub fn backend_container(&self) -> &Container {
        self.backend.as_ref().expect("the backend container runs")
    }

    pub fn backend_container_mut(&mut self) -> &mut Container {
        self.backend.as_mut().expect("the backend container runs")
    }

    pub fn gateway_container(&self) -> &Container {
        self.gateway.as_ref().expect("the gateway container runs")
    }

    /// A player signs in through the gateway by the code mailed to them:
    /// (token, account id).
    pub async fn sign_in(&self, email: &str) -> (String, String) {
        let body = sign_in_at(&self.client, &self.gateway_url, &self.db, email, None).await;
        (
            body["token"].as_str().expect("token").to_owned(),
            body["account"]["id"]
                .as_str()
                .expect("account id")
                .to_owned(),
        )
    }

    /// The bootstrap admin's session token.
    pub async fn admin_token(&self) -> String {
        let r = self
            .client
            .post(self.backend("/api/v1/admin/auth/login"))
            .json(&json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("admin login");
        json_of(r, 200).await["token"]
            .as_str()
            .expect("admin token")
            .to_owned()
    }

    /// Registers `galaxy/game:integration` as ENGINE_VERSION; the admin token.
    pub async fn register_engine(&self) -> String {
        let admin = self.admin_token().await;
        let r = self
            .client
            .post(self.backend("/api/v1/admin/engine-versions"))
            .bearer_auth(&admin)
            .json(&json!({"version": ENGINE_VERSION, "image": GAME}))
            .send()
            .await
            .expect("register the engine");
        json_of(r, 201).await;
        admin
    }

    /// `method url` with a bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self.client.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        r.send().await.expect("HTTP request")
    }

    /// Stops the backend container with SIGTERM; its exit status.
    pub fn stop_backend(&mut self) -> std::process::ExitStatus {
        let mut backend = self.backend.take().expect("the backend container runs");
        backend.terminate(Duration::from_secs(30))
    }

    /// Starts the backend container again (same name, database, ports).
    pub async fn start_backend(&mut self) {
        assert!(self.backend.is_none(), "stop the backend first");
        self.backend = Some(Container::run("backend", &self.backend_spec));
        self.wait_backend_ready().await;
    }

    /// Stages a database outage for this stack's backend: its connections
    /// drop and new ones fail until `restore_database`.
    pub fn cut_database(&self) {
        self.forwarder.cut();
    }

    pub fn restore_database(&self) {
        self.forwarder.restore();
    }

    /// Docker's view of a container's HEALTHCHECK (`starting`, `healthy`, …).
    pub fn health(&self, container: &str) -> String {
        must(&["inspect", "-f", "{{.State.Health.Status}}", container])
            .trim()
            .to_owned()
    }

    /// The backend's and the gateway's output, for failure messages.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (name, c) in [("backend", &self.backend), ("gateway", &self.gateway)] {
            match c {
                Some(c) => out.push_str(&c.dump()),
                None => out.push_str(&format!("--- {name}: not running ---")),
            }
            out.push('\n');
        }
        out
    }

    /// Polls `cond` every 100 ms until it holds; panics with the logs after `limit`.
    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        crate::process::eventually(limit, what, || self.dump(), cond).await;
    }

    async fn status(&self, url: &str) -> Option<u16> {
        crate::backend::status_of(&self.client, url).await
    }

    async fn wait_backend_ready(&mut self) {
        let url = self.backend("/readyz");
        self.wait_ready(&url, true).await;
    }

    async fn wait_gateway_ready(&mut self) {
        let url = self.url("/readyz");
        self.wait_ready(&url, false).await;
    }

    async fn wait_ready(&mut self, url: &str, backend: bool) {
        let started = Instant::now();
        loop {
            if self.status(url).await == Some(200) {
                return;
            }
            let container = if backend {
                &mut self.backend
            } else {
                &mut self.gateway
            };
            if let Some(status) = container.as_mut().and_then(Container::exited) {
                panic!(
                    "{url}: the container exited with {status} before ready:\n{}",
                    self.dump()
                );
            }
            assert!(
                started.elapsed() < READY_LIMIT,
                "{url} not ready within {READY_LIMIT:?}:\n{}",
                self.dump()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Volumes of the games this stack's backend ran (kept by the runtime
    /// when a container goes), read from the stack's database.
    fn game_volumes(&self) -> Vec<String> {
        let url = self.db.url().clone();
        let ids = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                use diesel_async::RunQueryDsl;
                let mut conn = galaxy_db::establish(&url).await.ok()?;
                diesel::sql_query("SELECT game_id::text AS id FROM runtime_records")
                    .load::<GameId>(&mut conn)
                    .await
                    .ok()
            })
        })
        .join()
        .ok()
        .flatten()
        .unwrap_or_default();
        ids.into_iter()
            .filter_map(|g| g.id.parse().ok())
            .map(galaxy_runtime::volume_name)
            .collect()
    }
}

#[derive(diesel::QueryableByName)]
struct GameId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "=== testenv {}: container logs ===\n{}",
                self.id,
                self.dump()
            );
        }
        let volumes = self.game_volumes();
        self.gateway.take();
        self.backend.take();
        docker::remove_stack(&self.id, &self.id, &volumes);
    }
}
