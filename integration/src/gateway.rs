//! Real `galaxy-gateway` processes in front of real backends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::backend::{status_of, wait_ready};
use crate::process::Process;
use crate::{Backend, binary_path, free_port};

/// Environment for a gateway process; defaults suit a test.
pub struct GatewayBuilder {
    env: BTreeMap<String, String>,
}

impl GatewayBuilder {
    /// A gateway on a free port in front of `backends`.
    pub fn new(backends: &[&Backend]) -> Self {
        let urls: Vec<String> = backends
            .iter()
            .map(|b| format!("http://{}", b.http))
            .collect();
        let grpc: Vec<String> = backends.iter().map(|b| b.grpc.to_string()).collect();
        let token = backends
            .first()
            .and_then(|b| b.env("BACKEND_PUSH_TOKEN"))
            .unwrap_or("test-push-token-0123456789")
            .to_owned();
        let mut env = BTreeMap::new();
        for (k, v) in [
            (
                "GATEWAY_HTTP_LISTEN_ADDR",
                format!("127.0.0.1:{}", free_port()),
            ),
            ("GATEWAY_BACKEND_URL", urls.join(",")),
            ("GATEWAY_BACKEND_GRPC_ADDR", grpc.join(",")),
            ("GATEWAY_PUSH_TOKEN", token),
            ("GATEWAY_ID", "gw-test".to_owned()),
            ("GATEWAY_OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("GATEWAY_OTEL_METRICS_EXPORTER", "none".to_owned()),
            ("GATEWAY_SHUTDOWN_TIMEOUT", "5s".to_owned()),
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

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary_path("galaxy-gateway"));
        cmd.args(args).env_clear();
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(&self.env);
        cmd
    }

    /// Runs `galaxy-gateway <args>` to completion: (status, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = self.command(args).output().expect("run galaxy-gateway");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn spawn(self) -> Gateway {
        let process = Process::spawn("gateway", self.command(&["serve"]));
        let http: SocketAddr = self.env["GATEWAY_HTTP_LISTEN_ADDR"].parse().expect("addr");
        Gateway {
            process,
            http,
            client: reqwest::Client::new(),
            env: self.env,
        }
    }
}

/// A running gateway process; killed on drop.
pub struct Gateway {
    process: Process,
    pub http: SocketAddr,
    pub client: reqwest::Client,
    env: BTreeMap<String, String>,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `ws://…` of `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.http)
    }

    /// A builder with the same environment (another gateway beside it gets
    /// a new port).
    pub fn same_env(&self) -> GatewayBuilder {
        GatewayBuilder {
            env: self.env.clone(),
        }
    }

    pub async fn status_of(&self, path: &str) -> Option<u16> {
        status_of(&self.client, &self.url(path)).await
    }

    pub async fn wait_ready(&mut self, limit: Duration) -> Duration {
        let url = self.url("/readyz");
        wait_ready(&mut self.process, &self.client, &url, limit).await
    }

    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        crate::process::eventually(limit, what, || self.dump(), cond).await;
    }

    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.process.terminate(limit)
    }

    pub fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.process.logs()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.process.stdout_lines()
    }

    pub fn dump(&self) -> String {
        self.process.dump()
    }
}
