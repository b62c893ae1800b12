//! deploy/compose.yaml's environment, run as containers from the
//! `:integration` images the way compose would wire them — what compose
//! itself cannot show here, since its PostgreSQL, mailpit and socket-proxy
//! images cannot be pulled:
//!
//! - the backend gets the compose `environment:` block as written, secrets
//!   as files under `/run/secrets/`, and no engine network made for it: it
//!   creates `${GALAXY_ENGINE_NETWORK}` itself through the Docker API;
//! - it reaches PostgreSQL as `postgres` and the SMTP sink as `mailpit`
//!   (host names that the image's NSS resolves; the servers are the test
//!   process's, at the network's gateway address);
//! - the gateway reaches the backend by the DNS name `backend` (a network
//!   alias, as compose gives a service), and only the gateway's port is
//!   published.
//!
//! The one deviation: the socket proxy's image cannot be pulled here, so
//! `BACKEND_DOCKER_HOST` is dropped and the socket is mounted instead
//! (deploy/tests/compose.rs checks the proxy's allow-list against the
//! runtime's calls).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use galaxy_testdb::TestDb;
use galaxy_testsmtp::SmtpServer;

use super::container::{Container, Spec};
use super::docker::{self, OWNER_LABEL, must};
use super::forward::Forwarder;
use super::images::{BACKEND, GATEWAY};
use super::{ADMIN_PASSWORD, PUSH_TOKEN, READY_LIMIT};
use crate::{free_port, geoip_fixture};

/// `${NAME:-default}`, `${NAME:?message}` and `${NAME}` in a compose value,
/// from `vars` (what a `.env` would set) or the default.
pub fn interpolate(value: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let inner_end = rest[start..]
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in {value}"));
        let inner = &rest[start + 2..start + inner_end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner.split(":?").next().unwrap_or(inner), None),
        };
        match (vars.get(name), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => panic!("compose needs {name}, which the scenario does not set"),
        }
        rest = &rest[start + inner_end + 1..];
    }
    out.push_str(rest);
    out.trim_matches('"').to_owned()
}

/// The stack compose describes, minus what cannot be pulled.
pub struct ComposeStack {
    pub id: String,
    /// The engine network the backend is told to use (and must create).
    pub engine_network: String,
    pub gateway_url: String,
    backend: Option<Container>,
    gateway: Option<Container>,
    secrets: PathBuf,
    pub smtp: SmtpServer,
    _forwarder: Forwarder,
    pub db: TestDb,
}

impl ComposeStack {
    /// Boots backend and gateway with the compose `environment:` blocks
    /// `backend_env` and `gateway_env` (values still uninterpolated).
    pub async fn boot(
        backend_env: &BTreeMap<String, String>,
        gateway_env: &BTreeMap<String, String>,
    ) -> Self {
        super::images::ensure();
        docker::sweep_dead_owners();
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "galaxy-compose-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let owner = format!("{OWNER_LABEL}={}", std::process::id());
        must(&[
            "network",
            "create",
            "--label",
            &owner,
            "--label",
            &format!("galaxy.testenv.stack={id}"),
            &id,
        ]);
        let host_ip = super::gateway_address(&id);
        let db = TestDb::new();
        let smtp = SmtpServer::builder()
            .start_on(&format!("{host_ip}:0"))
            .expect("an SMTP server on the network's gateway address");
        let (forwarder, user, database) = super::forward_database(&db, &host_ip);

        // What deploy/.env would set; everything else takes compose's default.
        let engine_network = format!("{id}-engines");
        let vars: BTreeMap<&str, String> = [
            ("GALAXY_ENGINE_NETWORK", engine_network.clone()),
            ("BACKEND_SMTP_PORT", smtp.port().to_string()),
        ]
        .into_iter()
        .collect();

        let secrets = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&secrets).expect("secrets folder");
        for (name, value) in [
            (
                "backend_postgres_dsn",
                format!(
                    "postgres://{user}postgres:{}/{database}",
                    forwarder.addr.port()
                ),
            ),
            ("push_token", PUSH_TOKEN.to_owned()),
            ("admin_password", ADMIN_PASSWORD.to_owned()),
        ] {
            std::fs::write(secrets.join(name), format!("{value}\n")).expect("a secret file");
        }

        let mut env: BTreeMap<String, String> = backend_env
            .iter()
            .map(|(k, v)| (k.clone(), interpolate(v, &vars)))
            .collect();
        env.remove("BACKEND_DOCKER_HOST");
        let backend_spec = Spec {
            name: format!("{id}-backend"),
            image: BACKEND,
            stack: id.clone(),
            network: id.clone(),
            env,
            args: [
                "--network-alias",
                "backend",
                "--user",
                "0:0",
                "-v",
                "/var/run/docker.sock:/var/run/docker.sock",
                "-v",
                &format!(
                    "{}:/var/lib/galaxy/geoip.mmdb:ro",
                    geoip_fixture().display()
                ),
                "-v",
                &format!("{}:/run/secrets:ro", secrets.display()),
                "--add-host",
                &format!("postgres:{host_ip}"),
                "--add-host",
                &format!("mailpit:{host_ip}"),
            ]
            .map(str::to_owned)
            .to_vec(),
            command: vec!["serve".to_owned()],
        };
        let gateway_port = free_port();
        let gateway_spec = Spec {
            name: format!("{id}-gateway"),
            image: GATEWAY,
            stack: id.clone(),
            network: id.clone(),
            env: gateway_env
                .iter()
                .map(|(k, v)| (k.clone(), interpolate(v, &vars)))
                .collect(),
            args: [
                "-v",
                &format!("{}:/run/secrets:ro", secrets.display()),
                "-p",
                &format!("127.0.0.1:{gateway_port}:8000"),
            ]
            .map(str::to_owned)
            .to_vec(),
            command: vec!["serve".to_owned()],
        };
        let mut stack = Self {
            id,
            engine_network,
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
            backend: Some(Container::run("backend", &backend_spec)),
            gateway: Some(Container::run("gateway", &gateway_spec)),
            secrets,
            smtp,
            _forwarder: forwarder,
            db,
        };
        stack.wait_gateway_ready().await;
        stack
    }

    /// Ready: the gateway's push stream is up and it reports the backend
    /// (found by its DNS name) ready — migrated, caches warm, which takes
    /// the database reached by host name.
    async fn wait_gateway_ready(&mut self) {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.gateway_url);
        let started = Instant::now();
        while !backend_ready_behind(&client, &url).await {
            let exited = [&mut self.backend, &mut self.gateway]
                .into_iter()
                .flatten()
                .find_map(|c| Some((c.name.clone(), c.exited()?)));
            if let Some((name, status)) = exited {
                panic!("{name} exited with {status}:\n{}", self.dump());
            }
            assert!(
                started.elapsed() < READY_LIMIT,
                "{url} not ready within {READY_LIMIT:?}:\n{}",
                self.dump()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM to the backend; its exit status.
    pub fn stop_backend(&mut self) -> std::process::ExitStatus {
        let mut c = self.backend.take().expect("the backend runs");
        c.terminate(Duration::from_secs(30))
    }

    /// SIGTERM to the gateway; its exit status.
    pub fn stop_gateway(&mut self) -> std::process::ExitStatus {
        let mut c = self.gateway.take().expect("the gateway runs");
        c.terminate(Duration::from_secs(30))
    }

    pub fn dump(&self) -> String {
        [&self.backend, &self.gateway]
            .into_iter()
            .flatten()
            .map(|c| format!("--- {} ---\n{}", c.name, c.dump()))
            .collect()
    }
}

/// The gateway's `/readyz` is 200 and names at least one backend `ready`.
async fn backend_ready_behind(client: &reqwest::Client, url: &str) -> bool {
    let Ok(r) = client.get(url).send().await else {
        return false;
    };
    if r.status() != reqwest::StatusCode::OK {
        return false;
    }
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    body["backends"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["state"] == "ready"))
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("=== compose stack {} ===\n{}", self.id, self.dump());
        }
        self.gateway.take();
        self.backend.take();
        docker::remove_stack(&self.id, &self.engine_network, &[]);
        docker::remove_stack(&self.id, &self.id, &[]);
        if let Err(e) = std::fs::remove_dir_all(&self.secrets) {
            eprintln!(
                "compose stack: cannot remove {}: {e}",
                self.secrets.display()
            );
        }
    }
}
