//! The engine side of the local stack: when a Docker daemon answers, the
//! reference engine image is built (once) and registered with the backend as
//! engine version `dev`, so games can be started right away.

use std::process::Command;

use anyhow::{Context, bail};
use bollard::Docker;
use serde_json::{Value, json};

use crate::docker::is_status;
use crate::http;
use crate::term::say;

pub const IMAGE: &str = "galaxy/game:dev";
pub const VERSION: &str = "dev";

/// Builds the engine image when the daemon lacks it.
pub async fn ensure_image(docker: &Docker) -> anyhow::Result<()> {
    match docker.inspect_image(IMAGE).await {
        Ok(_) => return Ok(()),
        Err(e) if is_status(&e, &[404]) => {}
        Err(e) => bail!("cannot inspect the engine image {IMAGE}: {e}"),
    }
    say!(
        "building the engine image {IMAGE} (first run only: a static release build of \
         galaxy-engine, a few minutes on 2 cores) …"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../integration/engine/build-image.sh"
    );
    let status = Command::new(script)
        .arg(VERSION)
        .status()
        .with_context(|| format!("run {script}"))?;
    if !status.success() {
        bail!("{script} {VERSION} failed ({status})");
    }
    Ok(())
}

/// Registers the image as engine version `dev` through the admin API
/// (already registered, as in a `--data` stack's second run, is fine).
pub fn register(http_port: u16, admin_user: &str, admin_password: &str) -> anyhow::Result<()> {
    let login = json!({"username": admin_user, "password": admin_password}).to_string();
    let (status, body) =
        http::request(http_port, "POST", "/api/v1/admin/auth/login", None, &login)?;
    if status != 200 {
        bail!("the admin login answered {status}: {body}");
    }
    let token = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .with_context(|| format!("no token in the admin login answer: {body}"))?;
    let version = json!({"version": VERSION, "image": IMAGE}).to_string();
    let (status, body) = http::request(
        http_port,
        "POST",
        "/api/v1/admin/engine-versions",
        Some(&token),
        &version,
    )?;
    if status != 201 && status != 409 {
        bail!("registering engine version {VERSION} answered {status}: {body}");
    }
    Ok(())
}
