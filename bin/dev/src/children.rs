//! The processes the launcher starts (backend, gateway): their output goes
//! to a log file under the stack's folder, their last lines are kept for the
//! report when one dies, and their exit is noticed at once.
//!
//! Each child runs in its own process group: a Ctrl-C on the terminal then
//! reaches only the launcher, which stops the children in its own order
//! (backend before its database, engines after the backend that would
//! restart them). Being out of the terminal's group, a child would outlive
//! a launcher killed with SIGKILL; a small watchdog per child stops it then.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::process::{Pid, Signal, kill_process};

use crate::events::Event;
use crate::log_lines;
use crate::term::{say, show};

const TAIL_LINES: usize = 12;

pub struct ChildProc {
    pub name: &'static str,
    pub log_path: PathBuf,
    child: Arc<Mutex<Child>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    watchdog: Mutex<Option<Child>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A pump thread that panicked must not keep the launcher from cleaning up.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts `command` as `name`, logging to `log_path` (truncated). With
/// `verbose` every line is also printed; otherwise only warnings and errors.
/// `events` hears of the exit once the child's output is drained.
pub fn spawn(
    name: &'static str,
    mut command: Command,
    log_path: &Path,
    verbose: bool,
    events: Sender<Event>,
) -> anyhow::Result<ChildProc> {
    let log = File::create(log_path)
        .with_context(|| format!("create the log file {}", log_path.display()))?;
    let log = Arc::new(Mutex::new(log));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("start {name}"))?;
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let open_pipes = Arc::new(AtomicUsize::new(2));
    let stdout = child.stdout.take().context("child stdout")?;
    let stderr = child.stderr.take().context("child stderr")?;
    for (pipe, stream) in [
        (Box::new(stdout) as Box<dyn Read + Send>, "stdout"),
        (Box::new(stderr), "stderr"),
    ] {
        let pump = Pump {
            name,
            log: Arc::clone(&log),
            tail: Arc::clone(&tail),
            verbose,
            open_pipes: Arc::clone(&open_pipes),
        };
        std::thread::Builder::new()
            .name(format!("{name}-{stream}"))
            .spawn(move || pump.run(pipe))
            .context("start a log thread")?;
    }
    let watchdog = spawn_watchdog(child.id())
        .map_err(|e| say!("warning: no watchdog for {name} ({e}); kill -9 of the launcher would leave it running"))
        .ok();
    let child = Arc::new(Mutex::new(child));
    let watched = Arc::clone(&child);
    std::thread::Builder::new()
        .name(format!("{name}-wait"))
        .spawn(move || watch(name, &watched, &open_pipes, &events))
        .context("start a watcher thread")?;
    Ok(ChildProc {
        name,
        log_path: log_path.to_owned(),
        child,
        tail,
        watchdog: Mutex::new(watchdog),
    })
}

/// A detached shell that waits for the launcher to disappear, then stops
/// the child's process group (TERM, and KILL 10 s later).
fn spawn_watchdog(child: u32) -> std::io::Result<Child> {
    let script = format!(
        "while kill -0 {launcher} 2>/dev/null; do sleep 1; done; \
         kill -TERM -{child} 2>/dev/null || exit 0; i=0; \
         while [ $i -lt 10 ] && kill -0 -{child} 2>/dev/null; do sleep 1; i=$((i+1)); done; \
         kill -KILL -{child} 2>/dev/null",
        launcher = std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

/// Polls for the exit (under the lock, so `stop` never signals a reaped
/// pid), waits briefly for the last output, then reports it.
fn watch(
    name: &'static str,
    child: &Mutex<Child>,
    open_pipes: &AtomicUsize,
    events: &Sender<Event>,
) {
    let status = loop {
        match lock(child).try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                say!("warning: cannot watch {name}: {e}");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The final error line is often the last thing written; give the pumps
    // a moment to put it in the tail before anyone reads it.
    let drained_by = Instant::now() + Duration::from_secs(1);
    while open_pipes.load(Ordering::Acquire) > 0 && Instant::now() < drained_by {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The receiver is gone only when the launcher is exiting anyway.
    events.send(Event::ChildExited { name, status }).ok();
}

struct Pump {
    name: &'static str,
    log: Arc<Mutex<File>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    verbose: bool,
    open_pipes: Arc<AtomicUsize>,
}

impl Pump {
    fn run(self, pipe: Box<dyn Read + Send>) {
        let mut log_failed = false;
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(bytes) = line else { break };
            let line = String::from_utf8_lossy(&bytes).into_owned();
            let written = {
                let mut log = lock(&self.log);
                log.write_all(&bytes).and_then(|()| log.write_all(b"\n"))
            };
            if let Err(e) = written
                && !log_failed
            {
                log_failed = true;
                say!("warning: cannot write {}'s log: {e}", self.name);
            }
            if self.verbose {
                show!("{} | {line}", self.name);
            } else if let Some(shown) = log_lines::for_terminal(self.name, &line) {
                say!("{shown}");
            }
            let mut tail = lock(&self.tail);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        self.open_pipes.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ChildProc {
    /// The exit status if the child has ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    /// "NAME exited (STATUS); last lines of LOG:" and the lines, for a
    /// person to see why at once.
    pub fn death_report(&self, status: ExitStatus) -> String {
        let mut out = format!(
            "{} exited ({status}); last lines of {}:",
            self.name,
            self.log_path.display()
        );
        let tail = lock(&self.tail);
        if tail.is_empty() {
            out.push_str("\n  (it wrote nothing)");
        }
        for line in tail.iter() {
            out.push_str("\n  ");
            out.push_str(&log_lines::for_report(line));
        }
        out
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. Err says what failed.
    pub fn stop(&self, grace: Duration) -> anyhow::Result<()> {
        let stopped = self.stop_child(grace);
        // Its job is done once the child is; it must not signal a pid
        // that is later reused.
        if let Some(mut watchdog) = lock(&self.watchdog).take() {
            let gone = watchdog
                .kill()
                .and_then(|()| watchdog.wait().map(drop))
                .or_else(|e| match watchdog.try_wait() {
                    Ok(Some(_)) => Ok(()),
                    _ => Err(e),
                });
            if let Err(e) = gone {
                say!("warning: cannot stop {}'s watchdog: {e}", self.name);
            }
        }
        stopped
    }

    fn stop_child(&self, grace: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + grace;
        {
            // Checked and signalled under one lock: the watcher reaps only
            // under it too, so the pid cannot have been reused in between.
            let mut child = lock(&self.child);
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            signal(&child, Signal::TERM)
                .with_context(|| format!("send SIGTERM to {}", self.name))?;
        }
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut child = lock(&self.child);
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        child
            .kill()
            .with_context(|| format!("kill {} after {grace:?}", self.name))?;
        child
            .wait()
            .with_context(|| format!("reap {}", self.name))?;
        anyhow::bail!("{} did not stop within {grace:?}; killed it", self.name)
    }
}

impl Drop for ChildProc {
    /// Stopped on every way out, a panic included.
    fn drop(&mut self) {
        if let Err(e) = self.stop(Duration::from_secs(10)) {
            say!("cleanup: {e:#}");
        }
    }
}

fn signal(child: &Child, sig: Signal) -> std::io::Result<()> {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
        .ok_or_else(|| std::io::Error::other("child has no valid pid"))?;
    kill_process(pid, sig).map_err(std::io::Error::from)
}
