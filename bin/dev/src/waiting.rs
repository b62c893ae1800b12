//! Waiting during start-up: for a child's `/readyz`, while a Ctrl-C or a
//! child that dies ends the wait at once (no timeout to sit out).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::children::ChildProc;
use crate::events::Event;
use crate::http;
use crate::term::say;

/// A readiness wait this long means something hangs, not something slow.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Ctrl-C, SIGTERM or SIGHUP arrived during start-up: not a failure, a stop.
#[derive(Debug)]
pub struct Interrupted(pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} during start-up", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Err(Interrupted) when a stop signal is waiting. Used between the
/// blocking steps before any child exists, so only signals can be queued.
pub fn interrupted(events: &Receiver<Event>) -> anyhow::Result<()> {
    while let Ok(event) = events.try_recv() {
        if let Event::Stop(signal) = event {
            return Err(Interrupted(signal).into());
        }
    }
    Ok(())
}

/// Polls `child`'s `/readyz` until it answers 200, bailing at once when the
/// child (or `also`, a child it depends on) exits or a stop signal comes.
pub fn wait_ready(
    child: &ChildProc,
    also: Option<&ChildProc>,
    port: u16,
    events: &Receiver<Event>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Stop(signal)) => return Err(Interrupted(signal).into()),
            Ok(Event::ChildExited { name, status }) => {
                let died = [Some(child), also]
                    .into_iter()
                    .flatten()
                    .find(|c| c.name == name);
                match died {
                    Some(c) => bail!("{}", c.death_report(status)),
                    None => bail!("{name} exited ({status})"),
                }
            }
            Ok(Event::Reprint) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("the launcher's event threads ended"),
        }
        if let Ok((200, _)) = http::request(port, "GET", "/readyz", None, "") {
            say!("{} is ready on 127.0.0.1:{port}", child.name);
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            let (_, body) = http::request(port, "GET", "/readyz", None, "").unwrap_or_default();
            bail!(
                "{} was not ready within {} s (its /readyz: {}); its log is {}",
                child.name,
                READY_TIMEOUT.as_secs(),
                if body.is_empty() {
                    "no answer"
                } else {
                    body.as_str()
                },
                child.log_path.display()
            );
        }
    }
}
