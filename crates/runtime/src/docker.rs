//! The Docker side of the runtime, over bollard (decision D1): the engine
//! network, images under the pull policy, one named volume and one container
//! per game.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, EndpointSettings, HostConfig, Mount, MountType,
    NetworkCreateRequest, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::model::ResourceLimits;

pub const LABEL_BACKEND: &str = "galaxy.backend";
pub const LABEL_GAME: &str = "galaxy.game_id";
pub const LABEL_VERSION: &str = "galaxy.engine_version";
/// The engine's HTTP port inside its container.
pub const ENGINE_PORT: u16 = 8080;

pub fn container_name(game_id: Uuid) -> String {
    format!("galaxy-game-{game_id}")
}

pub fn volume_name(game_id: Uuid) -> String {
    format!("galaxy-game-{game_id}-data")
}

/// Connects to `BACKEND_DOCKER_HOST` (`unix://…`, `tcp://…` or `http://…`).
/// The API version is negotiated later ([`negotiate`]) because that needs
/// the daemon.
pub fn connect(host: &str) -> Result<Docker, String> {
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        Docker::connect_with_http(&format!("http://{addr}"), 120, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("http://") {
        Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(format!(
            "unsupported Docker host {host:?} (unix://, tcp:// or http://)"
        ));
    };
    docker.map_err(|e| e.to_string())
}

/// Speaks the daemon's API version when it is older than bollard's default.
pub async fn negotiate(docker: Docker) -> Result<Docker, String> {
    docker
        .negotiate_version()
        .await
        .map_err(|e| format!("the Docker daemon does not answer: {e}"))
}

fn is_status(e: &DockerError, codes: &[u16]) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

/// A container carrying `galaxy.backend=1`.
#[derive(Debug, Clone)]
pub struct LabelledContainer {
    pub id: String,
    pub name: String,
    pub game_id: Option<Uuid>,
    pub running: bool,
    /// Its address on the engine network, when attached and running.
    pub ip: Option<String>,
}

/// A container's state as inspected.
#[derive(Debug, Clone)]
pub struct ContainerState {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub ip: Option<String>,
}

/// What to create for a game.
pub struct EngineContainer<'a> {
    pub game_id: Uuid,
    pub engine_version: &'a str,
    pub image: &'a str,
    pub start_config: String,
}

#[derive(Clone)]
pub struct Engines {
    docker: Docker,
    network: String,
    limits: ResourceLimits,
}

impl Engines {
    pub fn new(docker: Docker, network: String, limits: ResourceLimits) -> Self {
        Self {
            docker,
            network,
            limits,
        }
    }

    pub fn client(&self) -> Docker {
        self.docker.clone()
    }

    /// Creates the user-defined bridge if it is missing.
    pub async fn ensure_network(&self) -> Result<(), String> {
        match self.docker.inspect_network(&self.network, None).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, &[404]) => {}
            Err(e) => return Err(format!("cannot inspect network {}: {e}", self.network)),
        }
        let created = self
            .docker
            .create_network(NetworkCreateRequest {
                name: self.network.clone(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([(LABEL_BACKEND.into(), "1".into())])),
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another process created it between our inspect and create.
            Err(e) if is_status(&e, &[409]) => Ok(()),
            Err(e) => Err(format!("cannot create network {}: {e}", self.network)),
        }
    }

    pub async fn image_present(&self, image: &str) -> Result<bool, String> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, &[404]) => Ok(false),
            Err(e) => Err(format!("cannot inspect image {image}: {e}")),
        }
    }

    pub async fn pull(&self, image: &str) -> Result<(), String> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| format!("cannot pull {image}: {e}"))?;
        }
        Ok(())
    }

    pub async fn ensure_volume(&self, game_id: Uuid) -> Result<(), String> {
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume_name(game_id)),
                labels: Some(HashMap::from([
                    (LABEL_BACKEND.into(), "1".into()),
                    (LABEL_GAME.into(), game_id.to_string()),
                ])),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| format!("cannot create volume {}: {e}", volume_name(game_id)))
    }

    /// Creates and starts the engine container; returns its id.
    pub async fn create_and_start(&self, c: &EngineContainer<'_>) -> Result<String, String> {
        let name = container_name(c.game_id);
        let labels = HashMap::from([
            (LABEL_BACKEND.to_owned(), "1".to_owned()),
            (LABEL_GAME.to_owned(), c.game_id.to_string()),
            (LABEL_VERSION.to_owned(), c.engine_version.to_owned()),
        ]);
        let body = ContainerCreateBody {
            image: Some(c.image.to_owned()),
            env: Some(vec![format!("GALAXY_START_CONFIG={}", c.start_config)]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                memory: Some(self.limits.memory_bytes),
                nano_cpus: Some(self.limits.nano_cpus),
                pids_limit: Some(self.limits.pids),
                network_mode: Some(self.network.clone()),
                mounts: Some(vec![Mount {
                    target: Some("/data".into()),
                    source: Some(volume_name(c.game_id)),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
                // The reconciler owns restarts: Docker restarting an engine
                // that rejects its config (exit 78) would loop forever.
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("cannot create container {name}: {e}"))?;
        self.docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| format!("cannot start container {name}: {e}"))?;
        Ok(created.id)
    }

    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, String> {
        let c = match self.docker.inspect_container(name, None).await {
            Ok(c) => c,
            Err(e) if is_status(&e, &[404]) => return Ok(None),
            Err(e) => return Err(format!("cannot inspect {name}: {e}")),
        };
        let state = c.state.unwrap_or_default();
        let ip = c
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(&self.network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty());
        Ok(Some(ContainerState {
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            ip,
        }))
    }

    /// The last lines the container wrote to stderr (an engine's reason).
    pub async fn stderr_tail(&self, name: &str) -> String {
        let options = LogsOptionsBuilder::default()
            .stderr(true)
            .stdout(false)
            .tail("5")
            .build();
        let mut logs = self.docker.logs(name, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        let text = text.trim();
        text.chars().take(500).collect()
    }

    /// Stops (bounded) and removes the container; the volume stays.
    pub async fn stop_and_remove(&self, name: &str) -> Result<(), String> {
        let stop = StopContainerOptionsBuilder::default().t(5).build();
        match self.docker.stop_container(name, Some(stop)).await {
            Ok(()) => {}
            // 304: already stopped; 404: already gone.
            Err(e) if is_status(&e, &[304, 404]) => {}
            Err(e) => return Err(format!("cannot stop {name}: {e}")),
        }
        self.remove(name).await
    }

    pub async fn remove(&self, name: &str) -> Result<(), String> {
        // `v` removes anonymous volumes only; the named game volume stays.
        let rm = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(rm)).await {
            Ok(()) => Ok(()),
            // 409: removal already in progress.
            Err(e) if is_status(&e, &[404, 409]) => Ok(()),
            Err(e) => Err(format!("cannot remove {name}: {e}")),
        }
    }

    /// `docker ps -a -f label=galaxy.backend=1 -f network=<engine network>`,
    /// in one call.
    pub async fn list_labelled(&self) -> Result<Vec<LabelledContainer>, String> {
        // Scoped to this deployment's engine network, so two deployments (or
        // parallel test runs) sharing a daemon never remove each other's
        // engines (decision RUNTIME-4).
        let filters = HashMap::from([
            ("label", vec![format!("{LABEL_BACKEND}=1")]),
            ("network", vec![self.network.clone()]),
        ]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| format!("cannot list containers: {e}"))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let game_id = c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_GAME))
                    .and_then(|v| Uuid::parse_str(v).ok());
                let ip = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(&self.network))
                    .and_then(|e| e.ip_address)
                    .filter(|ip| !ip.is_empty());
                LabelledContainer {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    game_id,
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    ip,
                }
            })
            .collect())
    }
}

/// How long to wait between health probes of a starting engine.
pub const HEALTH_POLL: Duration = Duration::from_millis(200);
