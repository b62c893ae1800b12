//! The docker CLI, the owner label every testenv resource carries, and the
//! removal of a stack's resources — at drop, and at start for stacks whose
//! test process died without dropping them.

use std::process::{Command, Output, Stdio};

/// Label naming the test process that made a container, network or volume.
pub const OWNER_LABEL: &str = "galaxy.testenv.owner";

/// `docker ARGS` with its output captured. No Docker CLI fails loudly.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI is needed by the container integration suite")
}

/// `docker ARGS`, which must succeed; its stdout.
pub fn must(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(args: &[&str]) -> Vec<String> {
    String::from_utf8_lossy(&docker(args).stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes every container on `network` (the stack's own and the engines
/// the backend started there), their named volumes, the `extra_volumes`,
/// the containers labelled with `stack`, and the network itself.
pub fn remove_stack(stack: &str, network: &str, extra_volumes: &[String]) {
    let mut containers = lines(&["ps", "-aq", "--filter", &format!("network={network}")]);
    containers.extend(lines(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=galaxy.testenv.stack={stack}"),
    ]));
    containers.sort();
    containers.dedup();
    let mut volumes: Vec<String> = extra_volumes.to_vec();
    for id in &containers {
        volumes.extend(lines(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{if eq .Type \"volume\"}}{{println .Name}}{{end}}{{end}}",
            id,
        ]));
    }
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        docker(&args);
    }
    for volume in volumes {
        docker(&["volume", "rm", "-f", &volume]);
    }
    docker(&["network", "rm", network]);
}

/// Removes what stacks of dead test processes left behind (a run killed
/// mid-way). Resources of live processes — parallel scenarios — are kept.
pub fn sweep_dead_owners() {
    let filter = format!("label={OWNER_LABEL}");
    let format = format!(
        "{{{{.Name}}}} {{{{.Label \"{OWNER_LABEL}\"}}}} {{{{.Label \"galaxy.testenv.stack\"}}}}"
    );
    for line in lines(&["network", "ls", "--filter", &filter, "--format", &format]) {
        let mut parts = line.split_whitespace();
        let (Some(network), Some(pid), Some(stack)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if pid.parse().is_ok_and(|pid| !alive(pid)) {
            eprintln!("testenv: sweeping {network}, left by dead test process {pid}");
            // A compose stack's backend made its engine network itself.
            remove_stack(stack, &format!("{network}-engines"), &[]);
            remove_stack(stack, network, &[]);
        }
    }
    // The process-based harness (crate::backend) names each backend's engine
    // network `galaxy-test-<pid>-<n>`; the backend creates it unlabelled.
    for network in lines(&["network", "ls", "--format", "{{.Name}}"]) {
        let pid = network
            .strip_prefix("galaxy-test-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !alive(pid)) {
            eprintln!("testenv: sweeping {network}, left by a dead test process");
            remove_stack(&network, &network, &[]);
        }
    }
    let format = format!("{{{{.Names}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    for line in lines(&["ps", "-a", "--filter", &filter, "--format", &format]) {
        if let Some((name, pid)) = line.split_once(' ')
            && pid.parse().is_ok_and(|pid| !alive(pid))
        {
            docker(&["rm", "-f", "-v", name]);
        }
    }
    let format = format!("{{{{.Name}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    for line in lines(&["volume", "ls", "--filter", &filter, "--format", &format]) {
        if let Some((name, pid)) = line.split_once(' ')
            && pid.parse().is_ok_and(|pid| !alive(pid))
        {
            docker(&["volume", "rm", "-f", name]);
        }
    }
}
