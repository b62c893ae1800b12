//! Stacks that outlive a run: a `--data` world keeps its database, admin
//! password, engine (stopped, then restarted) and network across Ctrl-C;
//! and a launcher killed with SIGKILL leaves no running process, and the
//! next launcher removes the network it left.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::{Launcher, Ports};

const UP_WITHIN: Duration = Duration::from_secs(900);
const DOWN_WITHIN: Duration = Duration::from_secs(90);
const BANNER_END: &str = "Enter (or SIGUSR1) shows this again";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Removes a test's `--data` world (folder, engine, volume, network) at the
/// end, whatever happened; the launcher itself removes none of it.
struct World {
    dir: PathBuf,
    network: Option<String>,
    game: Option<String>,
}

impl Drop for World {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .ok();
        };
        if let Some(id) = &self.game {
            let id = id.parse().unwrap();
            docker(&["rm", "-f", &galaxy_runtime::container_name(id)]);
            docker(&["volume", "rm", &galaxy_runtime::volume_name(id)]);
        }
        if let Some(network) = &self.network {
            docker(&["network", "rm", network]);
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

#[test]
fn a_data_world_survives_ctrl_c_and_comes_back() {
    let rt = runtime();
    let docker = rt.block_on(support::docker());
    // Under the temp dir: PostgreSQL runs as `postgres` when the tests run
    // as root, and must reach the folder.
    let mut world = World {
        dir: std::env::temp_dir().join(format!("galaxy-dev-world-{}", std::process::id())),
        network: None,
        game: None,
    };
    let data = ["--data".to_owned(), world.dir.display().to_string()];

    let ports = Ports::free();
    let mut l = Launcher::start(&[ports.args(), data.to_vec()].concat(), &[]);
    l.keep_world = true;
    let banner = l.wait_for(BANNER_END, UP_WITHIN);
    let network = support::stack_name(&banner);
    world.network = Some(network.clone());
    assert!(banner.contains("keeps the world"), "{banner}");
    let credentials = world.dir.join("credentials");
    let password = support::credential(&credentials, "admin_password");
    let push_token = support::credential(&credentials, "push_token");
    let players = support::players_url(&banner, &ports);
    let (player, game) = rt.block_on(async {
        let player = support::sign_in(&l, &players, "world@example.test").await;
        let game = support::start_game(&l, &players, &player).await;
        (player, game)
    });
    world.game = Some(game.clone());
    l.signal_group(Signal::INT);
    let status = l.wait_exit(DOWN_WITHIN);
    assert!(status.success(), "{status}:\n{}", l.output());
    assert!(!l.output().contains("cleanup:"), "{}", l.output());

    // Everything is kept; the engine is stopped, nothing listens.
    rt.block_on(async {
        assert!(support::network_exists(&docker, &network).await);
        let volume = galaxy_runtime::volume_name(game.parse().unwrap());
        assert!(support::volume_exists(&docker, &volume).await);
        let name = galaxy_runtime::container_name(game.parse().unwrap());
        let engine = docker.inspect_container(&name, None).await.unwrap();
        assert_eq!(engine.state.and_then(|s| s.running), Some(false));
    });
    assert!(world.dir.join("postgres/PG_VERSION").exists());
    for port in [ports.http, ports.grpc, ports.gateway] {
        assert!(
            !support::listening(port),
            "something still listens on {port}"
        );
    }
    drop(l);

    // The next run (other ports) finds the same world: the same admin
    // password and push token, the player's session, the game running.
    let ports = Ports::free();
    let mut l = Launcher::start(&[ports.args(), data.to_vec()].concat(), &[]);
    l.keep_world = true;
    let banner = l.wait_for(BANNER_END, UP_WITHIN);
    assert_eq!(support::stack_name(&banner), network);
    assert_eq!(
        support::credential(&credentials, "admin_password"),
        password
    );
    assert_eq!(support::credential(&credentials, "push_token"), push_token);
    let players = support::players_url(&banner, &ports);
    rt.block_on(support::wait_running(&l, &players, &player, &game));
    l.signal(Signal::TERM);
    let status = l.wait_exit(DOWN_WITHIN);
    assert!(status.success(), "{status}:\n{}", l.output());
}

#[test]
fn a_killed_launcher_stops_its_children_and_the_next_one_sweeps_its_network() {
    let rt = runtime();
    let docker = rt.block_on(support::docker());
    let ports = Ports::free();
    let mut killed = Launcher::start(&ports.args(), &[]);
    killed.wait_for(BANNER_END, UP_WITHIN);
    assert!(rt.block_on(support::network_exists(&docker, &killed.stack)));
    killed.signal(Signal::KILL);
    killed.wait_exit(Duration::from_secs(5));

    // The watchdogs stop the backend and gateway.
    let started = Instant::now();
    while [ports.http, ports.grpc, ports.gateway]
        .iter()
        .any(|p| support::listening(*p))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the killed launcher's children still listen"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The next launcher removes the killed one's network and folder.
    let next_ports = Ports::free();
    let mut next = Launcher::start(&next_ports.args(), &[]);
    let out = next.wait_for(BANNER_END, UP_WITHIN);
    assert!(
        out.contains(&format!("removed {}, left by a launcher", killed.stack)),
        "{out}"
    );
    assert!(!rt.block_on(support::network_exists(&docker, &killed.stack)));
    assert!(
        !killed.folder.exists(),
        "{} remains",
        killed.folder.display()
    );
    next.signal(Signal::INT);
    let status = next.wait_exit(DOWN_WITHIN);
    assert!(status.success(), "{status}:\n{}", next.output());
}
