//! The launcher's own connection to the Docker daemon (the one the backend
//! uses: its default socket), and the stack's engine network.
//!
//! The launcher creates the network itself, before the backend starts, so
//! that it is the stack's by construction (labelled with the stack's name)
//! and a start that fails after it exists still knows what to remove.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::NetworkCreateRequest;

/// The socket the backend's `BACKEND_DOCKER_HOST` defaults to.
pub const SOCKET: &str = "/var/run/docker.sock";
/// Marks resources the launcher made; the value is the stack's name.
pub const LABEL_STACK: &str = "galaxy.stack";
/// On a throwaway stack's network: the launcher's pid, so a later launcher
/// can tell the network of one that was killed (SIGKILL, a crash) and
/// remove it.
pub const LABEL_LAUNCHER: &str = "galaxy.stack.launcher_pid";

/// A daemon that answered a ping, with the API version negotiated (the
/// daemon may be older than the client library).
pub async fn connect() -> Result<Docker, String> {
    let docker = Docker::connect_with_unix(SOCKET, 30, bollard::API_DEFAULT_VERSION)
        .map_err(|e| format!("cannot reach Docker at {SOCKET}: {e}"))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| format!("the Docker daemon at {SOCKET} does not answer: {e}"))?;
    docker
        .ping()
        .await
        .map_err(|e| format!("the Docker daemon at {SOCKET} does not answer: {e}"))?;
    Ok(docker)
}

pub fn is_status(e: &DockerError, codes: &[u16]) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

/// Creates the stack's bridge network; Ok(false) when it already existed
/// (a `--data` stack's, from an earlier run). `throwaway` labels it with
/// the launcher's pid.
pub async fn ensure_network(docker: &Docker, name: &str, throwaway: bool) -> Result<bool, String> {
    match docker.inspect_network(name, None).await {
        Ok(_) => return Ok(false),
        Err(e) if is_status(&e, &[404]) => {}
        Err(e) => return Err(format!("cannot inspect network {name}: {e}")),
    }
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels(name, throwaway)),
            ..Default::default()
        })
        .await
        .map(|_| true)
        .map_err(|e| format!("cannot create network {name}: {e}"))
}

fn labels(name: &str, throwaway: bool) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (galaxy_runtime::LABEL_BACKEND.into(), "1".into()),
        (LABEL_STACK.into(), name.to_owned()),
    ]);
    if throwaway {
        labels.insert(LABEL_LAUNCHER.into(), std::process::id().to_string());
    }
    labels
}
