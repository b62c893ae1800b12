//! The launcher end to end, as its README promises: real processes, a real
//! PostgreSQL and a real Docker daemon. A stack that ran a game, a stack
//! whose start failed and a stack that was stopped with SIGTERM all leave no
//! container, volume, network, database or folder behind; a taken port is
//! named at once.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::json;
use support::{Launcher, Ports, json_of};

/// The engine image may have to be built on a fresh machine.
const UP_WITHIN: Duration = Duration::from_secs(900);
/// The backend's own shutdown bound is 10 s; engines are removed after it.
const DOWN_WITHIN: Duration = Duration::from_secs(90);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What a stack must not leave: its network, the engine container and
/// volume of `game`, its PostgreSQL, its folder and its listeners.
async fn assert_nothing_left(l: &Launcher, game: Option<&str>, ports: &Ports) {
    let docker = support::docker().await;
    assert!(
        !support::network_exists(&docker, &l.stack).await,
        "network {} remains",
        l.stack
    );
    let containers = support::containers_of(&docker, &l.stack, game).await;
    assert!(containers.is_empty(), "containers remain: {containers:?}");
    if let Some(id) = game {
        let volume = galaxy_runtime::volume_name(id.parse().unwrap());
        assert!(
            !support::volume_exists(&docker, &volume).await,
            "volume {volume} remains"
        );
    }
    assert_eq!(
        support::postgres_dirs_of(l.pid()),
        Vec::<std::path::PathBuf>::new()
    );
    for port in [ports.http, ports.grpc, ports.gateway] {
        assert!(
            !support::listening(port),
            "something still listens on {port}"
        );
    }
}

#[test]
fn a_stack_that_ran_a_game_leaves_nothing_after_ctrl_c() {
    let rt = runtime();
    rt.block_on(support::docker());
    let ports = Ports::free();
    let mut l = Launcher::start(&ports.args(), &[]);
    let banner = l.wait_for("Enter (or SIGUSR1) shows this again", UP_WITHIN);
    assert!(
        banner.contains(&format!("galaxy-stack-{} is up", l.pid())),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("--http-port {}", ports.http)),
        "{banner}"
    );
    assert!(
        banner.contains("engine version `dev`"),
        "the stack registers its engine: {banner}"
    );
    let backend = format!("http://127.0.0.1:{}", ports.http);
    // Players go through the gateway when the stack runs one.
    let players = support::players_url(&banner, &ports);

    // The admin, with the credentials file the banner names (owner-only).
    let credentials = l.folder.join("credentials");
    let mode = std::fs::metadata(&credentials).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let user = support::credential(&credentials, "admin_user");
    let password = support::credential(&credentials, "admin_password");
    assert!(banner.contains(&password), "the banner shows the password");

    // SIGUSR1 prints the banner again.
    l.signal(Signal::USR1);
    let started = Instant::now();
    while l.output().matches("shows this again").count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no second banner:\n{}",
            l.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let email = format!("stack-{}@example.test", l.pid());
    let game = rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{backend}/api/v1/admin/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        let admin = json_of(r, 200).await["token"].as_str().unwrap().to_owned();
        let r = http
            .get(format!("{backend}/api/v1/admin/engine-versions"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let versions = json_of(r, 200).await.to_string();
        assert!(versions.contains("galaxy/game:dev"), "{versions}");

        // A player signs in with the code the launcher shows from the
        // mail, and starts a game: the backend runs its engine.
        let player = support::sign_in(&l, &players, &email).await;
        let id = support::start_game(&l, &players, &player).await;
        let docker = support::docker().await;
        let engines = support::containers_of(&docker, &l.stack, None).await;
        assert!(
            engines.iter().any(|n| n.contains(&id)),
            "the engine runs on the stack's network: {engines:?}"
        );
        let volume = galaxy_runtime::volume_name(id.parse().unwrap());
        assert!(support::volume_exists(&docker, &volume).await);
        id
    });

    // Ctrl-C: SIGINT to the whole process group, as a terminal sends it.
    l.signal_group(Signal::INT);
    let status = l.wait_exit(DOWN_WITHIN);
    assert!(status.success(), "{status}:\n{}", l.output());
    assert!(
        !l.output().contains("cleanup:"),
        "no cleanup step failed:\n{}",
        l.output()
    );
    rt.block_on(assert_nothing_left(&l, Some(&game), &ports));
    assert!(!l.folder.exists(), "{} remains", l.folder.display());
}

#[test]
fn a_failed_start_is_reported_at_once_and_cleaned_up() {
    let rt = runtime();
    rt.block_on(support::docker());
    let ports = Ports::free();
    // A bad setting passed through from the environment: the backend
    // exits with a configuration error after the stack made its network
    // and database.
    let mut l = Launcher::start(
        &ports.args(),
        &[("BACKEND_RUNTIME_IMAGE_PULL_POLICY", "sometimes")],
    );
    let status = l.wait_exit(UP_WITHIN);
    let out = l.output();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains(&format!("created the Docker network {}", l.stack)),
        "the network existed before the failure: {out}"
    );
    assert!(
        out.contains("galaxy-backend exited (exit status: 2)"),
        "{out}"
    );
    assert!(
        out.contains("  configuration error: BACKEND_RUNTIME_IMAGE_PULL_POLICY"),
        "the backend's own reason is shown: {out}"
    );
    assert!(!out.contains("cleanup:"), "no cleanup step failed: {out}");
    rt.block_on(assert_nothing_left(&l, None, &ports));
    // The log of a failed start is kept for reading; the test removes it.
    let log = std::fs::read_to_string(l.folder.join("logs/backend.log")).unwrap();
    assert!(log.contains("BACKEND_RUNTIME_IMAGE_PULL_POLICY"), "{log}");
}

#[test]
fn a_taken_port_is_named_at_once_and_another_port_works() {
    let rt = runtime();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut ports = Ports::free();
    ports.http = taken_port;
    let started = Instant::now();
    let mut l = Launcher::start(&ports.args(), &[]);
    let status = l.wait_exit(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = l.output();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains(&format!("port {taken_port} (backend HTTP) is not free")),
        "{out}"
    );
    assert!(out.contains("--http-port"), "{out}");
    drop(l);

    // Another HTTP port: the stack starts; SIGTERM stops and removes it.
    ports.http = support::free_port();
    let mut l = Launcher::start(&ports.args(), &[]);
    let banner = l.wait_for("Enter (or SIGUSR1) shows this again", UP_WITHIN);
    assert!(
        banner.contains(&format!("http://127.0.0.1:{}", ports.http)),
        "{banner}"
    );
    l.signal(Signal::TERM);
    let status = l.wait_exit(DOWN_WITHIN);
    assert!(status.success(), "{status}:\n{}", l.output());
    drop(taken);
    rt.block_on(assert_nothing_left(&l, None, &ports));
}
