//! Everything the launcher waits for, as one channel: stop signals, requests
//! to print the banner again (Enter, SIGUSR1) and children that exited.
//!
//! Signal handlers are installed before anything starts, so a Ctrl-C during
//! start-up runs the same cleanup as one after the banner instead of killing
//! the launcher with half a stack left behind.

use std::process::ExitStatus;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::term::say;
use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug)]
pub enum Event {
    /// SIGINT, SIGTERM or SIGHUP (named for the message).
    Stop(&'static str),
    /// Enter on the terminal or SIGUSR1.
    Reprint,
    /// A child the launcher started ended by itself.
    ChildExited {
        name: &'static str,
        status: ExitStatus,
    },
}

pub struct Events {
    pub tx: Sender<Event>,
    pub rx: Receiver<Event>,
}

/// Installs the signal handlers (returns once they are in place) and starts
/// the threads that turn signals and terminal lines into events.
pub fn listen() -> anyhow::Result<Events> {
    let (tx, rx) = channel();
    let (installed_tx, installed_rx) = channel::<anyhow::Result<()>>();
    let signal_tx = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    report(&installed_tx, Err(anyhow::Error::from(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let streams = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                    signal(SignalKind::user_defined1()),
                );
                let (mut int, mut term, mut hup, mut usr1) = match streams {
                    (Ok(i), Ok(t), Ok(h), Ok(u)) => (i, t, h, u),
                    (Err(e), _, _, _)
                    | (_, Err(e), _, _)
                    | (_, _, Err(e), _)
                    | (_, _, _, Err(e)) => {
                        report(&installed_tx, Err(e.into()));
                        return;
                    }
                };
                report(&installed_tx, Ok(()));
                loop {
                    let event = tokio::select! {
                        _ = int.recv() => Event::Stop("SIGINT"),
                        _ = term.recv() => Event::Stop("SIGTERM"),
                        // The terminal closed: clean up as for Ctrl-C.
                        _ = hup.recv() => Event::Stop("SIGHUP"),
                        _ = usr1.recv() => Event::Reprint,
                    };
                    if signal_tx.send(event).is_err() {
                        return;
                    }
                }
            });
        })
        .context("start the signal thread")?;
    installed_rx
        .recv()
        .context("the signal thread ended before installing its handlers")?
        .context("install signal handlers")?;

    // Enter prints the banner again. With no terminal (stdin closed, as in
    // tests) the thread just ends.
    let stdin_tx = tx.clone();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                if line.is_err() || stdin_tx.send(Event::Reprint).is_err() {
                    return;
                }
            }
        })
        .context("start the terminal thread")?;
    Ok(Events { tx, rx })
}

fn report(tx: &Sender<anyhow::Result<()>>, r: anyhow::Result<()>) {
    if tx.send(r).is_err() {
        say!("warning: the launcher stopped waiting for its signal handlers");
    }
}
