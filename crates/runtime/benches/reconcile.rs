//! One reconciler pass over 200 running engines on the real Docker daemon
//! and a real PostgreSQL (issue 17, goal ≤ 5 s), beside two anchors through
//! a bollard client set up as the runtime's own: the bare
//! `docker ps -a --filter label=galaxy.backend=1 --filter network=…` the
//! pass starts with, and that list plus an inspect of each of the 200
//! (8 at a time, as the pass runs its actions). Rounds alternate anchor and
//! ours; medians are printed, the ratios last. Then one pass that has to
//! restart killed engines.
//!
//! Run: `cargo bench -p galaxy-runtime --bench reconcile`
//! (`GALAXY_BENCH_ENGINES`, `GALAXY_BENCH_ROUNDS` override 200 and 15).
//! Every container, volume and network it made is removed at the end, also
//! when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use futures_util::StreamExt;
use galaxy_runtime::{
    Actor, ContainerDriver, DockerDriver, LABEL_BACKEND, ObservedState, PullPolicy, ResourceLimits,
    RuntimeService,
};

/// Engines started at once, each wave waited for (a start is bounded by the
/// harness's 20 s start timeout, which 200 bring-ups at once on two cores
/// would not meet).
const WAVE: usize = 20;
const KILLED: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn available_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

async fn run() {
    let engines = env_usize("GALAXY_BENCH_ENGINES", 200);
    let rounds = env_usize("GALAXY_BENCH_ROUNDS", 15);
    let h = support::Harness::new(PullPolicy::IfMissing).await;
    let memory_before = available_memory_mib();

    let mut games = Vec::with_capacity(engines);
    let started = Instant::now();
    while games.len() < engines {
        let mut wave = Vec::with_capacity(WAVE);
        for _ in 0..WAVE.min(engines - games.len()) {
            let g = h.game().await;
            h.runtime
                .start_game(h.request(g, "1.0.0"), Actor::System)
                .await
                .expect("start accepted");
            wave.push(g);
        }
        h.eventually(
            Duration::from_secs(120),
            "a wave of engines running",
            || {
                wave.iter().all(|g| {
                    h.runtime
                        .record(*g)
                        .is_some_and(|r| r.observed_state == ObservedState::Running)
                })
            },
        )
        .await;
        games.extend(wave);
    }
    println!(
        "started {engines} engines in {:.1?} (waves of {WAVE}); available memory {memory_before} MiB before, {} MiB after",
        started.elapsed(),
        available_memory_mib()
    );

    // The anchors' client: a bollard client made and negotiated as the
    // runtime makes its own.
    let anchor = DockerDriver::connect(
        "unix:///var/run/docker.sock",
        h.guard.network.clone(),
        ResourceLimits::default(),
    )
    .expect("docker client");
    anchor.prepare().await.expect("docker prepared");
    let docker = anchor.client();
    let filters = HashMap::from([
        ("label", vec![format!("{LABEL_BACKEND}=1")]),
        ("network", vec![h.guard.network.clone()]),
    ]);
    let list_options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();

    let (mut ours, mut list, mut list_inspect) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let listed = docker
            .list_containers(Some(list_options.clone()))
            .await
            .expect("list");
        list.push(t.elapsed());
        assert_eq!(listed.len(), engines);

        let t = Instant::now();
        let listed = docker
            .list_containers(Some(list_options.clone()))
            .await
            .expect("list");
        let inspected: Vec<_> = futures_util::stream::iter(listed)
            .map(|c| {
                let docker = docker.clone();
                async move {
                    docker
                        .inspect_container(c.id.as_deref().unwrap_or_default(), None)
                        .await
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        list_inspect.push(t.elapsed());
        assert!(inspected.iter().all(Result::is_ok));
        assert_eq!(inspected.len(), engines);

        let t = Instant::now();
        let report = h.runtime.reconcile_once().await.expect("reconcile");
        ours.push(t.elapsed());
        assert_eq!(report.containers, engines, "{report:?}");
        assert_eq!(report.records, engines, "{report:?}");
        assert_eq!(
            report.restarted + report.orphans_removed + report.stopped + report.refreshed,
            0,
            "{report:?}"
        );
    }

    for g in games.iter().take(KILLED) {
        assert!(support::docker_cmd(&[
            "kill",
            &galaxy_runtime::container_name(*g)
        ]));
    }
    let t = Instant::now();
    let report = h.runtime.reconcile_once().await.expect("reconcile");
    let repair = t.elapsed();
    assert_eq!(report.restarted, KILLED, "{report:?}");

    let (ours, list, list_inspect) = (
        median(&mut ours),
        median(&mut list),
        median(&mut list_inspect),
    );
    println!("rounds: {rounds}, medians over {engines} running engines:");
    println!("  anchor: docker ps (label + network filter):          {list:.1?}");
    println!("  anchor: docker ps + inspect of each (8 at a time):   {list_inspect:.1?}");
    println!("  ours:   one reconciler pass, nothing to change:      {ours:.1?} (goal <= 5 s)");
    println!("  ours:   one pass restarting {KILLED} killed engines:        {repair:.1?}");
    println!(
        "ratio ours / (ps + inspect): {:.2}; ours / ps: {:.2}",
        ours.as_secs_f64() / list_inspect.as_secs_f64(),
        ours.as_secs_f64() / list.as_secs_f64()
    );
}
