//! The Docker driver, over bollard (decision D1): the engine network,
//! images under the pull policy, one named volume and one container per
//! game. It implements [`ContainerDriver`]; nothing outside this file knows
//! it is Docker.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
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

use crate::driver::{
    ContainerDriver, EngineSpec, EngineState, LABEL_BACKEND, LABEL_GAME, LABEL_VERSION,
    LabelledEngine, container_name, volume_name,
};
use crate::model::ResourceLimits;

/// The engine's HTTP port inside its container.
pub const ENGINE_PORT: u16 = 8080;

/// Connects to `BACKEND_DOCKER_HOST` (`unix://…`, `tcp://…` or `http://…`).
/// The API version is negotiated later ([`ContainerDriver::prepare`])
/// because that needs the daemon.
fn connect(host: &str) -> Result<Docker, String> {
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

fn is_status(e: &DockerError, codes: &[u16]) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

/// Engines as Docker containers on one user-defined bridge.
pub struct DockerDriver {
    /// Replaced once by the client speaking the negotiated API version.
    docker: RwLock<Docker>,
    ready: AtomicBool,
    network: String,
    limits: ResourceLimits,
}

impl DockerDriver {
    /// A driver for `BACKEND_DOCKER_HOST`; nothing is asked of the daemon
    /// until [`ContainerDriver::prepare`].
    pub fn connect(host: &str, network: String, limits: ResourceLimits) -> Result<Self, String> {
        Ok(Self {
            docker: RwLock::new(connect(host)?),
            ready: AtomicBool::new(false),
            network,
            limits,
        })
    }

    /// The bollard client (the negotiated one once prepared).
    pub fn client(&self) -> Docker {
        self.docker
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Creates the user-defined bridge if it is missing.
    async fn ensure_network(&self, docker: &Docker) -> Result<(), String> {
        match docker.inspect_network(&self.network, None).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, &[404]) => {}
            Err(e) => return Err(format!("cannot inspect network {}: {e}", self.network)),
        }
        let created = docker
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

    /// The container's address on the engine network as an endpoint.
    fn endpoint(&self, networks: Option<HashMap<String, EndpointSettings>>) -> Option<String> {
        networks
            .and_then(|mut n| n.remove(&self.network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
            .map(|ip| format!("http://{ip}:{ENGINE_PORT}"))
    }

    fn create_body(&self, c: &EngineSpec<'_>) -> ContainerCreateBody {
        let labels = HashMap::from([
            (LABEL_BACKEND.to_owned(), "1".to_owned()),
            (LABEL_GAME.to_owned(), c.game_id.to_string()),
            (LABEL_VERSION.to_owned(), c.engine_version.to_owned()),
        ]);
        ContainerCreateBody {
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
        }
    }
}

#[async_trait]
impl ContainerDriver for DockerDriver {
    /// Negotiates the API version when the daemon is older than bollard's
    /// default, then ensures the engine network.
    async fn prepare(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let docker = self
            .client()
            .negotiate_version()
            .await
            .map_err(|e| format!("the Docker daemon does not answer: {e}"))?;
        self.ensure_network(&docker).await?;
        *self
            .docker
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = docker;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn image_present(&self, image: &str) -> Result<bool, String> {
        match self.client().inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, &[404]) => Ok(false),
            Err(e) => Err(format!("cannot inspect image {image}: {e}")),
        }
    }

    async fn pull(&self, image: &str) -> Result<(), String> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let docker = self.client();
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| format!("cannot pull {image}: {e}"))?;
        }
        Ok(())
    }

    async fn ensure_volume(&self, game_id: Uuid) -> Result<(), String> {
        self.client()
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

    async fn create_and_start(&self, c: &EngineSpec<'_>) -> Result<String, String> {
        let name = container_name(c.game_id);
        let docker = self.client();
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker
            .create_container(Some(options), self.create_body(c))
            .await
            .map_err(|e| format!("cannot create container {name}: {e}"))?;
        docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| format!("cannot start container {name}: {e}"))?;
        Ok(created.id)
    }

    async fn inspect(&self, engine: &str) -> Result<Option<EngineState>, String> {
        let c = match self.client().inspect_container(engine, None).await {
            Ok(c) => c,
            Err(e) if is_status(&e, &[404]) => return Ok(None),
            Err(e) => return Err(format!("cannot inspect {engine}: {e}")),
        };
        let state = c.state.unwrap_or_default();
        Ok(Some(EngineState {
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            endpoint: self.endpoint(c.network_settings.and_then(|n| n.networks)),
        }))
    }

    async fn stderr_tail(&self, engine: &str) -> String {
        let options = LogsOptionsBuilder::default()
            .stderr(true)
            .stdout(false)
            .tail("5")
            .build();
        let docker = self.client();
        let mut logs = docker.logs(engine, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        let text = text.trim();
        text.chars().take(500).collect()
    }

    async fn stop_and_remove(&self, engine: &str) -> Result<(), String> {
        let stop = StopContainerOptionsBuilder::default().t(5).build();
        match self.client().stop_container(engine, Some(stop)).await {
            Ok(()) => {}
            // 304: already stopped; 404: already gone.
            Err(e) if is_status(&e, &[304, 404]) => {}
            Err(e) => return Err(format!("cannot stop {engine}: {e}")),
        }
        self.remove(engine).await
    }

    async fn remove(&self, engine: &str) -> Result<(), String> {
        // `v` removes anonymous volumes only; the named game volume stays.
        let rm = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.client().remove_container(engine, Some(rm)).await {
            Ok(()) => Ok(()),
            // 409: removal already in progress.
            Err(e) if is_status(&e, &[404, 409]) => Ok(()),
            Err(e) => Err(format!("cannot remove {engine}: {e}")),
        }
    }

    /// `docker ps -a -f label=galaxy.backend=1 -f network=<engine network>`.
    async fn list_labelled(&self) -> Result<Vec<LabelledEngine>, String> {
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
            .client()
            .list_containers(Some(options))
            .await
            .map_err(|e| format!("cannot list containers: {e}"))?;
        Ok(list
            .into_iter()
            .map(|c| LabelledEngine {
                game_id: c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_GAME))
                    .and_then(|v| Uuid::parse_str(v).ok()),
                endpoint: self.endpoint(c.network_settings.and_then(|n| n.networks)),
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
            })
            .collect())
    }
}
