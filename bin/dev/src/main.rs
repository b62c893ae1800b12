//! `cargo stack`: everything a newcomer needs on one machine.
//!
//! Builds the backend and gateway, starts a private PostgreSQL, an SMTP sink
//! that shows every mail, the backend, the gateway and (when a Docker daemon
//! answers) the engine image, and prints where everything is. Ctrl-C stops
//! it all and removes what it made — or, with `--data DIR`, keeps the world.
//! See docs/local-stack.md.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

mod args;
mod banner;
mod cargo_build;
mod child_env;
mod children;
mod cleanup;
mod data_dir;
mod database;
mod docker;
mod engines;
mod events;
mod http;
mod log_lines;
mod mail_print;
mod mime;
mod pg_server;
mod ports;
mod stack;
mod sweep;
mod term;
mod waiting;

use crate::term::{say, show};
use args::{Args, Parsed};
use ports::Port;
use stack::Stack;
use waiting::Interrupted;

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            show!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            say!("galaxy-dev: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // Before anything starts: a Ctrl-C from here on is a clean stop.
    let events = events::listen()?;
    let ports = [
        Port {
            number: args.http_port,
            what: "backend HTTP",
            flag: "--http-port",
        },
        Port {
            number: args.grpc_port,
            what: "backend gRPC",
            flag: "--grpc-port",
        },
        Port {
            number: args.gateway_port,
            what: "gateway HTTP",
            flag: "--gateway-port",
        },
    ];
    // Checked before the build too, so a taken port costs no minutes.
    ports::check_free(&ports)?;
    let target_dir = target_dir()?;
    if args.build {
        cargo_build::build(&target_dir)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the launcher's async runtime")?;
    let docker = runtime.block_on(docker::connect());
    match &docker {
        Ok(d) => runtime.block_on(engines::ensure_image(d))?,
        Err(why) => say!("warning: {why}: games cannot start in this stack"),
    }
    for failed in runtime.block_on(sweep::leftovers(docker.as_ref().ok())) {
        say!("warning: leftovers of a killed launcher: {failed}");
    }
    ports::check_free(&ports)?;

    let mut stack = Stack::new(args, target_dir, runtime, docker, events.tx.clone())?;
    let outcome = match stack.start(&events.rx) {
        Ok(banner) => {
            banner.print();
            stack.serve(&banner, &events.rx)
        }
        Err(e) => Err(e),
    };
    let failed = match &outcome {
        Ok(()) => false,
        Err(e) if e.is::<Interrupted>() => {
            say!("{e}: stopping the stack …");
            false
        }
        Err(e) => {
            say!("error: {e:#}\nstopping the stack …");
            true
        }
    };
    let failures = stack.shutdown(failed);
    if !failures.is_empty() {
        anyhow::bail!(
            "cleanup incomplete: {} step(s) failed (see above)",
            failures.len()
        );
    }
    if failed {
        anyhow::bail!("the stack failed (see above)");
    }
    Ok(())
}

/// Where the launcher runs from: the stack's binaries are built beside it.
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the launcher")?;
    Ok(exe
        .parent()
        .context("the launcher has no parent folder")?
        .to_path_buf())
}
