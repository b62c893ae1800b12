//! One reconcile pass over 50 running engine containers (real Docker, real
//! PostgreSQL). Run: `cargo bench -p galaxy-runtime --bench reconcile`.
//! Prints the steady-state pass time (nothing to change) and the time of a
//! pass that has to restart killed engines.

#![allow(clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use galaxy_runtime::{Actor, ObservedState, PullPolicy, RuntimeService};

const ENGINES: usize = 50;
const KILLED: usize = 5;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let h = support::Harness::new(PullPolicy::IfMissing).await;
    let mut games = Vec::with_capacity(ENGINES);
    let started = Instant::now();
    for _ in 0..ENGINES {
        let g = h.game().await;
        h.runtime
            .start_game(h.request(g, "1.0.0"), Actor::System)
            .await
            .expect("start accepted");
        games.push(g);
    }
    h.eventually(Duration::from_secs(300), "all engines running", || {
        games.iter().all(|g| {
            h.runtime
                .record(*g)
                .is_some_and(|r| r.observed_state == ObservedState::Running)
        })
    })
    .await;
    println!("started {ENGINES} engines in {:?}", started.elapsed());

    let mut steady = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let report = h.runtime.reconcile_once().await.expect("reconcile");
        steady.push(t.elapsed());
        assert_eq!(report.containers, ENGINES, "{report:?}");
        assert_eq!(report.restarted + report.orphans_removed, 0, "{report:?}");
    }
    steady.sort();
    println!(
        "steady reconcile pass over {ENGINES} containers: min {:?}, median {:?}, max {:?} (10 passes)",
        steady[0],
        steady[steady.len() / 2],
        steady[steady.len() - 1]
    );

    for g in &games[..KILLED] {
        assert!(support::docker_cmd(&[
            "kill",
            &galaxy_runtime::container_name(*g)
        ]));
    }
    let t = Instant::now();
    let report = h.runtime.reconcile_once().await.expect("reconcile");
    println!(
        "reconcile pass over {ENGINES} containers restarting {KILLED} killed engines: {:?} ({report:?})",
        t.elapsed()
    );
    assert_eq!(report.restarted, KILLED);
}
