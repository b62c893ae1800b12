//! The engine side of the local stack: when a Docker daemon answers, the
//! reference engine image is built (once) and registered with the backend as
//! engine version `dev`, so games can be started right away. Everything the
//! stack's backend started on its private network is removed on exit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub const IMAGE: &str = "galaxy/game:dev";
pub const VERSION: &str = "dev";

pub struct Engines {
    pub network: String,
}

fn docker(args: &[&str]) -> Option<std::process::Output> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
}

impl Engines {
    /// `None` (and a note) when no Docker daemon answers.
    pub fn prepare() -> anyhow::Result<Option<Self>> {
        if !docker(&["info"]).is_some_and(|o| o.status.success()) {
            eprintln!("no Docker daemon answers: games cannot be started in this stack");
            return Ok(None);
        }
        if !docker(&["image", "inspect", IMAGE]).is_some_and(|o| o.status.success()) {
            eprintln!("building the engine image {IMAGE} (first run only) …");
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../integration/engine/build-image.sh"
            );
            let status = Command::new(script)
                .arg(VERSION)
                .status()
                .context("run build-image.sh")?;
            if !status.success() {
                bail!("build-image.sh failed");
            }
        }
        Ok(Some(Self {
            network: format!("galaxy-stack-{}", std::process::id()),
        }))
    }

    /// Registers the image as engine version `dev` through the admin API.
    pub fn register(&self, http_port: u16, admin_password: &str) -> anyhow::Result<()> {
        wait_ready(http_port)?;
        let (status, body) = http(
            http_port,
            "POST",
            "/api/v1/admin/auth/login",
            None,
            &format!(r#"{{"username":"admin","password":"{admin_password}"}}"#),
        )?;
        if status != 200 {
            bail!("admin login answered {status}: {body}");
        }
        let token = body
            .split("\"token\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no token in the login answer")?
            .to_owned();
        let (status, body) = http(
            http_port,
            "POST",
            "/api/v1/admin/engine-versions",
            Some(&token),
            &format!(r#"{{"version":"{VERSION}","image":"{IMAGE}"}}"#),
        )?;
        if status != 201 && status != 409 {
            bail!("registering the engine version answered {status}: {body}");
        }
        Ok(())
    }
}

impl Drop for Engines {
    /// Engine containers of this stack, their volumes, then the network.
    fn drop(&mut self) {
        let network_filter = format!("network={}", self.network);
        let Some(out) = docker(&[
            "ps",
            "-aq",
            "--filter",
            "label=galaxy.backend=1",
            "--filter",
            &network_filter,
            "--format",
            "{{.ID}} {{.Label \"galaxy.game_id\"}}",
        ]) else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut parts = line.split_whitespace();
            if let (Some(id), Some(game)) = (parts.next(), parts.next()) {
                let _ = docker(&["rm", "-f", id]);
                let _ = docker(&["volume", "rm", "-f", &format!("galaxy-game-{game}-data")]);
            }
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

fn wait_ready(port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = http(port, "GET", "/readyz", None, "") {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the backend was not ready within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One HTTP/1.1 request with `Connection: close`; (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP answer")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
