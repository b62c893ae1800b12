//! The launcher's one build step: the binaries the stack runs, built by the
//! cargo that started us, into the target dir we run from.
//!
//! `cargo stack` is `cargo run -p galaxy-dev`, so by the time this runs the
//! launcher itself is built; what remains is the backend and the gateway.
//! The line printed first says so, because on a fresh checkout this step is
//! most of the first run.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use crate::term::say;
use anyhow::{Context, bail};
use serde_json::Value;

/// The binaries the stack runs, in start order.
pub const BINARIES: &[&str] = &["galaxy-backend", "galaxy-gateway"];

const WORKSPACE_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");

/// Builds the packages of [`BINARIES`] that the workspace has, streaming
/// cargo's progress; release when the launcher itself is a release build.
pub fn build(target_dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let packages = packages_of(&cargo)?;
    let mut names = Vec::new();
    let mut command = Command::new(&cargo);
    command.args(["build", "--manifest-path", WORKSPACE_MANIFEST]);
    for bin in BINARIES {
        match packages.iter().find(|(b, _)| b == bin) {
            Some((_, package)) => {
                command.args(["-p", package]);
                names.push(*bin);
            }
            None => say!("warning: no package in the workspace builds {bin}; skipping it"),
        }
    }
    if names.is_empty() {
        bail!("the workspace has none of {BINARIES:?}");
    }
    let release = target_dir.file_name().is_some_and(|n| n == "release");
    if release {
        command.arg("--release");
    }
    say!(
        "building {}{} (first run: several minutes on 2 cores; later runs: seconds) …",
        names.join(", "),
        if release { " (release)" } else { "" }
    );
    let status = command.status().context("run cargo build")?;
    if status.signal().is_some() {
        // Ctrl-C reaches cargo too (it shares the terminal's group).
        bail!("the build was interrupted ({status})");
    }
    if !status.success() {
        bail!("cargo build of {} failed ({status})", names.join(", "));
    }
    Ok(())
}

/// (binary, package) for every bin target in the workspace.
fn packages_of(cargo: &str) -> anyhow::Result<Vec<(String, String)>> {
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
            WORKSPACE_MANIFEST,
        ])
        .output()
        .context("run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parse cargo metadata")?;
    Ok(bins_in(&meta))
}

fn bins_in(meta: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if is_bin && let Some(bin) = target["name"].as_str() {
                found.push((bin.to_owned(), name.to_owned()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn bins_are_found_with_their_packages() {
        let meta = json!({"packages": [
            {"name": "galaxy-backend", "targets": [
                {"name": "galaxy_backend", "kind": ["lib"]},
                {"name": "galaxy-backend", "kind": ["bin"]}]},
            {"name": "galaxy-gateway-bin", "targets": [{"name": "galaxy-gateway", "kind": ["bin"]}]}
        ]});
        assert_eq!(
            super::bins_in(&meta),
            vec![
                ("galaxy-backend".to_owned(), "galaxy-backend".to_owned()),
                ("galaxy-gateway".to_owned(), "galaxy-gateway-bin".to_owned())
            ]
        );
    }
}
