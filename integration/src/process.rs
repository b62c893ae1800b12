//! A child process of the suite (a backend, a gateway, a Redis server) with
//! its output captured for assertions and failure messages; killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Process {
    name: &'static str,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn pump(reader: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
}

impl Process {
    /// Starts `cmd` with stdin closed and both outputs captured.
    pub fn spawn(name: &'static str, mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().expect("stdout"), Arc::clone(&stdout));
        pump(child.stderr.take().expect("stderr"), Arc::clone(&stderr));
        Self {
            name,
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Parsed JSON log lines so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `kill -<name>` (TERM, INT, STOP, CONT, …).
    pub fn signal(&self, name: &str) {
        // A process that already exited makes `kill` fail: nothing to do.
        match Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if !status.success() => eprintln!("kill -{name} {}: not running", self.name),
            Ok(_) => {}
            Err(e) => eprintln!("kill -{name} {}: {e}", self.name),
        }
    }

    /// `kill -9`: no destructors, no shutdown path.
    pub fn kill_hard(&mut self) {
        if self.exited().is_none()
            && let Err(e) = self.child.kill()
        {
            eprintln!("kill {}: {e}", self.name);
        }
        if let Err(e) = self.child.wait() {
            eprintln!("wait for {}: {e}", self.name);
        }
    }

    /// Waits for the exit status; kills and panics (with the output) after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if started.elapsed() > limit {
                self.kill_hard();
                panic!(
                    "{} did not exit within {limit:?}:\n{}",
                    self.name,
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status (bounded by `limit`).
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(limit)
    }

    /// The captured output, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout_lines().join("\n"),
            self.name,
            self.stderr_lines().join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill_hard();
        }
    }
}

/// Polls `cond` every 50 ms until it holds; panics with `context()` after `limit`.
pub async fn eventually<F, Fut>(
    limit: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut cond: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}:\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
