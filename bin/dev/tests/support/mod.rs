//! The launcher as its tests see it: the built `galaxy-dev` binary in its
//! own process group (as a terminal runs it, so a group SIGINT is a Ctrl-C),
//! its output collected, and Docker asked directly what the stack left.

#![allow(dead_code, reason = "each test file uses its own part of the harness")]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use rustix::process::{Pid, Signal};

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The launcher and the backend it starts, built beside this test
/// (`cargo test --workspace` builds every binary first).
fn launcher_binary() -> PathBuf {
    let launcher = PathBuf::from(env!("CARGO_BIN_EXE_galaxy-dev"));
    let backend = launcher.with_file_name("galaxy-backend");
    assert!(
        backend.exists(),
        "{} is missing: run `cargo build -p galaxy-backend` first \
         (`cargo test --workspace` builds it)",
        backend.display()
    );
    launcher
}

pub struct Ports {
    pub http: u16,
    pub grpc: u16,
    pub gateway: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self {
            http: free_port(),
            grpc: free_port(),
            gateway: free_port(),
        }
    }

    pub fn args(&self) -> Vec<String> {
        vec![
            "--http-port".into(),
            self.http.to_string(),
            "--grpc-port".into(),
            self.grpc.to_string(),
            "--gateway-port".into(),
            self.gateway.to_string(),
        ]
    }
}

pub struct Launcher {
    child: Child,
    output: Arc<Mutex<String>>,
    /// `galaxy-stack-<pid>`: its network and folder name.
    pub stack: String,
    pub folder: PathBuf,
    exited: Option<ExitStatus>,
    /// A `--data` world another run still needs: Drop only stops the launcher.
    pub keep_world: bool,
}

impl Launcher {
    /// `galaxy-dev --no-build ARGS` with `env` added.
    pub fn start(args: &[String], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(launcher_binary());
        command
            .arg("--no-build")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().expect("start galaxy-dev");
        let output = Arc::new(Mutex::new(String::new()));
        pump(child.stdout.take().expect("stdout"), Arc::clone(&output));
        pump(child.stderr.take().expect("stderr"), Arc::clone(&output));
        let stack = format!("galaxy-stack-{}", child.id());
        let folder = std::env::temp_dir().join(&stack);
        Self {
            child,
            output,
            stack,
            folder,
            exited: None,
            keep_world: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `needle`; panics (showing the
    /// output) on timeout or when the launcher exits first.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            if let Some(status) = self.try_exit() {
                // Output may still be in the pipes.
                std::thread::sleep(Duration::from_millis(300));
                let out = self.output();
                if out.contains(needle) {
                    return out;
                }
                panic!("galaxy-dev exited ({status}) before printing {needle:?}:\n{out}");
            }
            assert!(
                started.elapsed() < limit,
                "galaxy-dev did not print {needle:?} within {limit:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("poll galaxy-dev");
        }
        self.exited
    }

    /// Sends `signal` to the launcher's process group, as a terminal does.
    pub fn signal_group(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).unwrap()).unwrap();
        rustix::process::kill_process_group(pid, signal).expect("signal galaxy-dev's group");
    }

    /// Sends `signal` to the launcher alone.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).unwrap()).unwrap();
        rustix::process::kill_process(pid, signal).expect("signal galaxy-dev");
    }

    /// Waits for the exit; panics (showing the output) after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "galaxy-dev did not exit within {limit:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Launcher {
    /// A failed test must not leave a stack running: kill the launcher and
    /// remove what its name marks (the launcher's own cleanup is what the
    /// tests check; this only runs when they already failed).
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            // Its own cleanup first; SIGKILL only if that hangs (the
            // launcher's watchdogs then stop its children).
            self.signal(Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(40);
            while self.try_exit().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if self.try_exit().is_none() {
                self.signal_group(Signal::KILL);
                self.child.wait().ok();
            }
        }
        if self.keep_world {
            return;
        }
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("network={}", self.stack))
            .output();
        if let Ok(ids) = ids {
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                Command::new("docker").args(["rm", "-f", id]).output().ok();
            }
        }
        Command::new("docker")
            .args(["network", "rm", &self.stack])
            .output()
            .ok();
        std::fs::remove_dir_all(&self.folder).ok();
    }
}

fn pump(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

/// The Docker daemon the launcher uses. No daemon → the test fails: these
/// tests are about what the stack leaves on Docker.
pub async fn docker() -> Docker {
    let docker =
        Docker::connect_with_unix("/var/run/docker.sock", 30, bollard::API_DEFAULT_VERSION)
            .expect("a Docker client");
    let docker = docker
        .negotiate_version()
        .await
        .expect("no Docker daemon answers at /var/run/docker.sock: the launcher tests need one");
    docker
        .ping()
        .await
        .expect("no Docker daemon answers: the launcher tests need one");
    docker
}

fn is_404(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether the network exists.
pub async fn network_exists(docker: &Docker, name: &str) -> bool {
    match docker.inspect_network(name, None).await {
        Ok(_) => true,
        Err(e) if is_404(&e) => false,
        Err(e) => panic!("inspect network {name}: {e}"),
    }
}

/// Whether the volume exists.
pub async fn volume_exists(docker: &Docker, name: &str) -> bool {
    match docker.inspect_volume(name).await {
        Ok(_) => true,
        Err(e) if is_404(&e) => false,
        Err(e) => panic!("inspect volume {name}: {e}"),
    }
}

/// Containers (any state) carrying the backend's label for `game_id` or
/// attached to `network`.
pub async fn containers_of(docker: &Docker, network: &str, game_id: Option<&str>) -> Vec<String> {
    let mut filters = vec![std::collections::HashMap::from([(
        "network",
        vec![network.to_owned()],
    )])];
    if let Some(id) = game_id {
        filters.push(std::collections::HashMap::from([(
            "label",
            vec![format!("galaxy.game_id={id}")],
        )]));
    }
    let mut names = Vec::new();
    for f in filters {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&f)
            .build();
        for c in docker
            .list_containers(Some(options))
            .await
            .expect("list containers")
        {
            names.extend(c.names.unwrap_or_default());
        }
    }
    names
}

/// The `key=value` line `key` of a credentials file.
pub fn credential(path: &Path, key: &str) -> String {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {}:\n{text}", path.display()))
        .to_owned()
}

/// Whether something accepts connections on the loopback port.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Throwaway PostgreSQL servers the launcher with `pid` started (the test
/// harness names their folders `<pid>-…`).
pub fn postgres_dirs_of(pid: u32) -> Vec<PathBuf> {
    let root = std::env::temp_dir().join("galaxy-testpg");
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{pid}-"))
        })
        .map(|e| e.path())
        .collect()
}

/// The stack's name from its banner (`Galaxy local stack NAME is up`).
pub fn stack_name(banner: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.strip_prefix("Galaxy local stack "))
        .and_then(|l| l.strip_suffix(" is up"))
        .unwrap_or_else(|| panic!("no stack name in the banner:\n{banner}"))
        .to_owned()
}

/// The players' base URL: the gateway when the banner says it runs.
pub fn players_url(banner: &str, ports: &Ports) -> String {
    let port = if banner.contains(&format!("gateway (--gateway-port {})", ports.gateway)) {
        ports.gateway
    } else {
        ports.http
    };
    format!("http://127.0.0.1:{port}")
}

pub async fn json_of(r: reqwest::Response, status: u16) -> serde_json::Value {
    let got = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// The code in the launcher's last mail block for `email`.
pub fn code_from_mail(out: &str, email: &str) -> Option<String> {
    let block = out
        .split("──── mail")
        .filter(|b| b.contains(email))
        .last()?;
    block
        .lines()
        .find_map(|l| l.strip_prefix("Code:"))
        .map(|c| c.trim().to_owned())
}

/// Signs `email` in with the code the launcher shows from the mail; the
/// session token.
pub async fn sign_in(l: &Launcher, players: &str, email: &str) -> String {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{players}/api/v1/auth/email-code"))
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await
        .unwrap();
    let challenge = json_of(r, 202).await;
    let started = Instant::now();
    let code = loop {
        if let Some(code) = code_from_mail(&l.output(), email) {
            break code;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no sign-in mail shown:\n{}",
            l.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code.len(), 6, "{code}");
    let r = http
        .post(format!("{players}/api/v1/auth/email-code/verify"))
        .json(&serde_json::json!({ "challenge_id": challenge["challenge_id"], "code": code }))
        .send()
        .await
        .unwrap();
    json_of(r, 200).await["token"].as_str().unwrap().to_owned()
}

/// Creates and starts a one-player game on the stack's `dev` engine; its id.
pub async fn start_game(l: &Launcher, players: &str, token: &str) -> String {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{players}/api/v1/lobby/games"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "name": "Launcher test", "race_name": "Vega", "min_players": 1, "max_players": 1,
            "turn_interval_seconds": 3600
        }))
        .send()
        .await
        .unwrap();
    let game = json_of(r, 201).await;
    assert_eq!(game["engine_version"], "dev");
    let id = game["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{players}/api/v1/lobby/games/{id}/start"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_running(l, players, token, &id).await;
    id
}

/// Waits until the game reads `running` and its report answers (its
/// engine is up).
pub async fn wait_running(l: &Launcher, players: &str, token: &str, id: &str) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let status = http
            .get(format!("{players}/api/v1/lobby/games/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap_or_default()["status"]
            .clone();
        let report = http
            .get(format!("{players}/api/v1/games/{id}/report"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        if status == "running" && report == 200 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "game {id} did not run (status {status}, report {report}):\n{}",
            l.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
