//! Taking the stack's engines down: a throwaway stack removes its engine
//! containers, their volumes and its network; a `--data` stack only stops
//! its engines so the next run finds the world as it was.
//!
//! Only the stack's own things are touched: containers labelled by the
//! backend on the stack's network, and the volumes of games in the stack's
//! own database (a volume outlives its container when a game finishes or an
//! engine failed to start, so the containers alone would miss some).
//! Every step that fails is returned, never dropped.

use std::collections::{BTreeSet, HashMap};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
    StopContainerOptionsBuilder,
};
use galaxy_runtime::{LABEL_BACKEND, LABEL_GAME, container_name, volume_name};
use uuid::Uuid;

use crate::docker::is_status;

/// An engine container of the stack.
struct Engine {
    id: String,
    game_id: Option<Uuid>,
}

/// Containers the backend made (its label) on `network`, running or not.
async fn engines_on(docker: &Docker, network: &str) -> Result<Vec<Engine>, String> {
    let filters = HashMap::from([
        ("label", vec![format!("{LABEL_BACKEND}=1")]),
        ("network", vec![network.to_owned()]),
    ]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| format!("cannot list the engine containers on {network}: {e}"))?;
    Ok(list
        .into_iter()
        .map(|c| Engine {
            id: c.id.unwrap_or_default(),
            game_id: c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_GAME))
                .and_then(|v| Uuid::parse_str(v).ok()),
        })
        .collect())
}

/// Removes the engine containers on `network`, the containers and volumes
/// of `games`, then the network. Returns the steps that failed.
pub async fn remove_all(docker: &Docker, network: &str, games: &[Uuid]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut game_ids: BTreeSet<Uuid> = games.iter().copied().collect();
    match engines_on(docker, network).await {
        Ok(engines) => {
            for e in engines {
                if let Err(err) = remove_container(docker, &e.id).await {
                    failures.push(err);
                }
                game_ids.extend(e.game_id);
            }
        }
        Err(e) => failures.push(e),
    }
    for game in &game_ids {
        // A container of a game that is not on the network any more (its
        // network was removed by hand, say) is still the stack's: the game
        // id is unique to the stack's database.
        if let Err(err) = remove_container(docker, &container_name(*game)).await {
            failures.push(err);
        }
        let volume = volume_name(*game);
        match docker
            .remove_volume(&volume, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => {}
            Err(e) if is_status(&e, &[404]) => {}
            Err(e) => failures.push(format!("cannot remove volume {volume}: {e}")),
        }
    }
    match docker.remove_network(network).await {
        Ok(()) => {}
        Err(e) if is_status(&e, &[404]) => {}
        Err(e) => failures.push(format!("cannot remove network {network}: {e}")),
    }
    failures
}

async fn remove_container(docker: &Docker, name: &str) -> Result<(), String> {
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    match docker.remove_container(name, Some(rm)).await {
        Ok(()) => Ok(()),
        // 404: gone already (or never existed for that game).
        Err(e) if is_status(&e, &[404]) => Ok(()),
        Err(e) => Err(format!("cannot remove container {name}: {e}")),
    }
}

/// Stops (does not remove) the engine containers on `network`; the backend
/// of the next run restarts them from their volumes.
pub async fn stop_all(docker: &Docker, network: &str) -> Vec<String> {
    let engines = match engines_on(docker, network).await {
        Ok(engines) => engines,
        Err(e) => return vec![e],
    };
    let mut failures = Vec::new();
    for e in engines {
        let stop = StopContainerOptionsBuilder::default().t(10).build();
        match docker.stop_container(&e.id, Some(stop)).await {
            Ok(()) => {}
            // 304: not running; 404: gone.
            Err(err) if is_status(&err, &[304, 404]) => {}
            Err(err) => failures.push(format!("cannot stop engine container {}: {err}", e.id)),
        }
    }
    failures
}
