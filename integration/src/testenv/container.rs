//! One container of a stack, run in the foreground (`docker run` without
//! `-d`) so its output is captured like a process's (crate::process) and
//! SIGTERM reaches it through the CLI's signal proxy. Removed on drop.

use std::collections::BTreeMap;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::docker::{OWNER_LABEL, docker};
use crate::process::Process;

/// What to run: image, name, network, environment, mounts, published ports.
pub struct Spec {
    pub name: String,
    pub image: &'static str,
    pub stack: String,
    pub network: String,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub command: Vec<String>,
}

pub struct Container {
    pub name: String,
    process: Process,
}

impl Container {
    pub fn run(label: &'static str, spec: &Spec) -> Self {
        // A name left by an earlier start of the same stack (a restart).
        docker(&["rm", "-f", "-v", &spec.name]);
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "--pull=never", "--name", &spec.name]);
        cmd.args(["--network", &spec.network]);
        cmd.args(["--label", &format!("{OWNER_LABEL}={}", std::process::id())]);
        cmd.args(["--label", &format!("galaxy.testenv.stack={}", spec.stack)]);
        for (k, v) in &spec.env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        cmd.args(&spec.args);
        cmd.arg(spec.image);
        cmd.args(&spec.command);
        Self {
            name: spec.name.clone(),
            process: Process::spawn(label, cmd),
        }
    }

    /// The exit status, if the container (its `docker run`) has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// SIGTERM through the CLI's signal proxy; the container's exit status.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.process.terminate(limit)
    }

    /// `docker kill`: no shutdown path.
    pub fn kill(&mut self) {
        docker(&["kill", &self.name]);
        self.process.kill_hard();
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

impl Drop for Container {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.name]);
    }
}
