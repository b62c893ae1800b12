//! What a killed launcher left behind. SIGKILL (or a crash) gives the
//! launcher no chance to clean up: its children stop by their watchdogs and
//! its PostgreSQL by the test harness's, but its engine network, engine
//! containers and folder stay. The next launcher removes them — only those
//! of throwaway stacks (labelled with their launcher's pid) whose launcher
//! no longer exists; a `--data` world is never swept.

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::ListNetworksOptionsBuilder;

use crate::cleanup;
use crate::data_dir::KEPT_MARKER;
use crate::docker::LABEL_LAUNCHER;
use crate::term::say;

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the networks (with their engines and those engines' volumes)
/// and folders of throwaway stacks whose launcher is gone. Returns what
/// failed; says what it removed.
pub async fn leftovers(docker: Option<&Docker>) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(docker) = docker {
        let filters = HashMap::from([("label", vec![LABEL_LAUNCHER.to_owned()])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        match docker.list_networks(Some(options)).await {
            Ok(networks) => {
                for n in networks {
                    let (Some(name), Some(pid)) = (
                        n.name,
                        n.labels
                            .as_ref()
                            .and_then(|l| l.get(LABEL_LAUNCHER))
                            .cloned(),
                    ) else {
                        continue;
                    };
                    if alive(&pid) {
                        continue;
                    }
                    // The games' database went with the launcher: the
                    // containers' labels are all that names their volumes.
                    let failed = cleanup::remove_all(docker, &name, &[]).await;
                    if failed.is_empty() {
                        say!("removed {name}, left by a launcher (pid {pid}) that was killed");
                    }
                    failures.extend(failed);
                }
            }
            Err(e) => failures.push(format!("cannot list Docker networks: {e}")),
        }
    }
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("galaxy-stack-") else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || alive(pid) {
            continue;
        }
        // A failed stack keeps its logs on purpose, for reading; those
        // stay until removed by hand.
        if entry.path().join(KEPT_MARKER).exists() {
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(entry.path()) {
            failures.push(format!("cannot remove {}: {e}", entry.path().display()));
        }
    }
    failures
}
