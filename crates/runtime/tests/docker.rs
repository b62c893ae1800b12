//! The runtime against the real Docker daemon and a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::time::Duration;

use galaxy_core::Page;
use galaxy_runtime::{
    Actor, EngineFailureKind, ObservedState, OperationKind, Outcome, PullPolicy, RuntimeError,
    RuntimeService,
};
use serde_json::json;
use support::{Event, Harness, IMAGE, IMAGE_V2, docker_cmd, inspect};
use uuid::Uuid;

const START: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_start_orders_forced_turn_kill_patch_stop() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let game = h.game().await;
    let admin = Actor::Admin(Uuid::now_v7());

    // Start: if_missing with the image present pulls nothing (no registry
    // answers here, so a pull would fail the start).
    h.start_as_owner(game, "1.0.0", ObservedState::Running)
        .await;
    assert!(h.events.all().contains(&Event::Running(game)));
    let name = galaxy_runtime::container_name(game);
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(&name, "{{index .Config.Labels \"galaxy.backend\"}}"),
        "1"
    );
    assert_eq!(
        inspect(&name, "{{index .Config.Labels \"galaxy.game_id\"}}"),
        game.to_string()
    );
    assert_eq!(
        inspect(&name, "{{index .Config.Labels \"galaxy.engine_version\"}}"),
        "1.0.0"
    );
    assert!(inspect(&name, "{{json .NetworkSettings.Networks}}").contains(&h.guard.network));
    assert_eq!(
        inspect(&name, "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}"),
        format!("{}:/data", galaxy_runtime::volume_name(game))
    );
    assert_eq!(
        inspect(&name, "{{.HostConfig.Memory}}"),
        (256 * 1024 * 1024).to_string()
    );
    assert_eq!(inspect(&name, "{{.HostConfig.PidsLimit}}"), "256");
    let record = h.runtime.record(game).unwrap();
    assert_eq!(record.current_turn, 0);
    assert!(record.endpoint.as_deref().unwrap().starts_with("http://"));
    assert!(record.next_turn_at.is_some());

    // Orders: the engine's 400 reason comes through; valid orders stored.
    let err = h
        .runtime
        .submit_orders(game, "Zorg", json!([{"type": "build_ships", "count": 11}]))
        .await
        .unwrap_err();
    match err {
        RuntimeError::EngineRejected(reason) => {
            assert!(reason.contains("between 1 and"), "{reason}");
        }
        other => panic!("expected the engine's rejection, got {other:?}"),
    }
    h.runtime
        .submit_orders(game, "Zorg", json!([{"type": "build_ships", "count": 3}]))
        .await
        .unwrap();
    h.runtime
        .submit_orders(game, "Humans", json!([{"type": "raise_industry"}]))
        .await
        .unwrap();
    assert!(matches!(
        h.runtime.engine_report(game, "Nobody", None).await,
        Err(RuntimeError::EngineNotFound(_))
    ));

    // Not due yet: a tick does nothing.
    assert_eq!(h.runtime.tick_once().await.unwrap(), 0);
    // Force-next-turn: the next tick generates exactly one turn...
    h.runtime.force_next_turn(game, admin).await.unwrap();
    assert!(h.runtime.record(game).unwrap().skip_next_wait);
    assert_eq!(h.runtime.tick_once().await.unwrap(), 1);
    // ...and the flag is consumed: the tick after does nothing early.
    assert_eq!(h.runtime.tick_once().await.unwrap(), 0);
    let record = h.runtime.record(game).unwrap();
    assert!(!record.skip_next_wait);
    assert_eq!(record.current_turn, 1);
    assert!(record.next_turn_at.unwrap() > chrono::Utc::now() + chrono::Duration::minutes(59));
    assert!(h.events.all().contains(&Event::Turn(game, 1, true)));
    let turns = h.runtime.turns(game).await.unwrap();
    assert_eq!(turns.len(), 1);
    assert!(turns[0].forced && turns[0].turn_no == 1);
    let zorg = h.runtime.engine_report(game, "Zorg", None).await.unwrap();
    assert_eq!(
        zorg,
        json!({"turn": 1, "race": "Zorg", "industry": 10, "ships": 3})
    );
    let humans = h
        .runtime
        .engine_report(game, "Humans", Some(1))
        .await
        .unwrap();
    assert_eq!(humans["industry"], 11);

    // docker kill: the next reconcile restarts it; the turn survives.
    assert!(docker_cmd(&["kill", &name]));
    let report = h.runtime.reconcile_once().await.unwrap();
    assert_eq!(report.restarted, 1, "{report:?}");
    let record = h.runtime.record(game).unwrap();
    assert_eq!(record.observed_state, ObservedState::Running);
    assert_eq!(record.current_turn, 1);
    assert_eq!(
        h.runtime.engine_report(game, "Zorg", None).await.unwrap()["ships"],
        3
    );
    // A steady pass changes nothing and stamps last_reconciled_at.
    let report = h.runtime.reconcile_once().await.unwrap();
    assert_eq!((report.restarted, report.refreshed), (0, 0), "{report:?}");
    assert!(h.runtime.record(game).unwrap().last_reconciled_at.is_some());

    // Patch to another version: new image, same volume, same turn.
    h.runtime.patch_game(game, "2.0.0", admin).await.unwrap();
    h.eventually(START, "patched engine running", || {
        h.runtime.record(game).is_some_and(|r| {
            r.observed_state == ObservedState::Running && r.engine_version == "2.0.0"
        })
    })
    .await;
    assert_eq!(inspect(&name, "{{.Config.Image}}"), IMAGE_V2);
    assert_eq!(
        inspect(&name, "{{index .Config.Labels \"galaxy.engine_version\"}}"),
        "2.0.0"
    );
    let record = h.runtime.record(game).unwrap();
    assert_eq!((record.image.as_str(), record.current_turn), (IMAGE_V2, 1));

    // Stop: the container goes, the record says so.
    h.runtime.stop_game(game, admin).await.unwrap();
    assert_eq!(
        h.events.all().last(),
        Some(&Event::Stopped(game)),
        "the lobby hears of the stop before the request returns"
    );
    h.wait_state(game, ObservedState::Absent).await;
    assert!(!docker_cmd(&["inspect", &name]));
    // Start again (admin): the game goes on from the volume.
    h.runtime.restart_game(game, admin).await.unwrap();
    h.wait_state(game, ObservedState::Running).await;
    let events = h.events.all();
    let stopped = events
        .iter()
        .rposition(|e| *e == Event::Stopped(game))
        .unwrap();
    assert!(
        events[stopped..].contains(&Event::Running(game)),
        "the restart is reported: {events:?}"
    );
    assert_eq!(h.runtime.record(game).unwrap().current_turn, 1);
    assert_eq!(inspect(&name, "{{.Config.Image}}"), IMAGE_V2);

    // One log row per operation, each finished with its outcome.
    let ops = h.operations(game).await;
    let kinds: Vec<_> = ops
        .iter()
        .rev()
        .map(|o| (o.operation, o.actor.clone()))
        .collect();
    let admin_id = admin.as_log_value();
    assert_eq!(
        kinds,
        vec![
            (OperationKind::Start, h.owner.to_string()),
            (OperationKind::ForceNextTurn, admin_id.clone()),
            (OperationKind::Start, "system".to_owned()),
            (OperationKind::Patch, admin_id.clone()),
            (OperationKind::Stop, admin_id.clone()),
            (OperationKind::Start, admin_id),
        ]
    );
    for op in &ops {
        assert_eq!(op.outcome, Outcome::Succeeded, "{op:?}");
        assert!(op.finished_at.is_some() && op.error_message.is_none());
    }

    // The caches agree with PostgreSQL after a restart of the service.
    let fresh = h.second_process().await;
    assert_eq!(fresh.record(game), h.runtime.record(game));
}

#[tokio::test(flavor = "multi_thread")]
async fn labelled_container_without_record_is_removed() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let stray = format!("galaxy-stray-{}", Uuid::new_v4().simple());
    h.guard.extra_containers.lock().unwrap().push(stray.clone());
    let label_game = format!("galaxy.game_id={}", Uuid::now_v7());
    assert!(
        docker_cmd(&["network", "create", &h.guard.network])
            || docker_cmd(&["network", "inspect", &h.guard.network])
    );
    assert!(docker_cmd(&[
        "create",
        "--name",
        &stray,
        "--network",
        &h.guard.network,
        "--label",
        "galaxy.backend=1",
        "--label",
        &label_game,
        IMAGE
    ]));
    let report = h.runtime.reconcile_once().await.unwrap();
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    assert!(!docker_cmd(&["inspect", &stray]));
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_policy_never_with_absent_image_fails_the_start() {
    let h = Harness::new(PullPolicy::Never).await;
    let game = h.game().await;
    let op = h.start_as_owner(game, "9.9.9", ObservedState::Failed).await;
    let failure = h.events.failure(game).expect("engine_failed fired");
    assert_eq!(failure.kind, EngineFailureKind::ImagePullFailed);
    assert!(failure.reason.contains("never"), "{}", failure.reason);
    let record = h.runtime.record(game).unwrap();
    assert!(
        record
            .last_error
            .unwrap()
            .contains("runtime.image_pull_failed")
    );
    let ops = h.runtime.operations(game, Page::default()).await.unwrap();
    assert_eq!(ops.total, 1);
    assert_eq!(
        (ops.items[0].id, ops.items[0].outcome),
        (op, Outcome::Failed)
    );
    assert!(
        ops.items[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("never")
    );
    assert!(!docker_cmd(&[
        "inspect",
        &galaxy_runtime::container_name(game)
    ]));
    // A failed start waits for an operator: the reconciler leaves it.
    let report = h.runtime.reconcile_once().await.unwrap();
    assert_eq!(report.restarted, 0);
    // Policy never with the image present starts normally.
    let other = h.game().await;
    h.start_until(
        h.request(other, "1.0.0"),
        Actor::System,
        ObservedState::Running,
    )
    .await;
    assert_eq!(h.runtime.record(other).unwrap().image, IMAGE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_config_the_engine_rejects_is_start_config_invalid() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let game = h.game().await;
    let mut req = h.request(game, "1.0.0");
    req.players[1].race_name = "zorg".into(); // same race twice (case-insensitive)
    h.start_until(req, Actor::Account(h.owner), ObservedState::Failed)
        .await;
    let failure = h.events.failure(game).expect("engine_failed fired");
    assert_eq!(failure.kind, EngineFailureKind::StartConfigInvalid);
    assert!(failure.reason.contains("used twice"), "{}", failure.reason);
    assert!(failure.reason.contains("code 78"), "{}", failure.reason);
    assert_eq!(h.operations(game).await[0].outcome, Outcome::Failed);
    // Operations that need a running engine say so.
    assert!(matches!(
        h.runtime.force_next_turn(game, Actor::System).await,
        Err(RuntimeError::NotRunning)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_turn_happens_once_across_processes_and_within_two_ticks() {
    let h = Harness::new(PullPolicy::IfMissing).await;
    let game = h.game().await;
    h.start_as_owner(game, "1.0.0", ObservedState::Running)
        .await;

    // A second "process" on the same database: both tick at once, one turn.
    let other = h.second_process().await;
    h.runtime
        .force_next_turn(game, Actor::System)
        .await
        .unwrap();
    let (a, b) = tokio::join!(h.runtime.tick_once(), other.tick_once());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "exactly one turn for one forced tick"
    );
    assert_eq!(h.runtime.turns(game).await.unwrap().len(), 1);

    // The periodic scheduler (tick 200 ms): a forced turn lands within two
    // ticks, and the consumed flag brings nothing early afterwards.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = h
        .runtime
        .spawn_workers(&shutdown, &galaxy_db::leader::Leadership::always());
    h.runtime
        .force_next_turn(game, Actor::System)
        .await
        .unwrap();
    let forced_at = std::time::Instant::now();
    h.eventually(Duration::from_secs(5), "second turn", || {
        h.runtime.record(game).is_some_and(|r| r.current_turn == 2)
    })
    .await;
    // Two ticks plus the turn itself; generous for a loaded 2-core machine.
    assert!(
        forced_at.elapsed() < Duration::from_millis(1500),
        "{:?}",
        forced_at.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(h.runtime.record(game).unwrap().current_turn, 2);
    assert!(!h.runtime.record(game).unwrap().skip_next_wait);
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
    let turns = h.runtime.turns(game).await.unwrap();
    assert_eq!(
        turns
            .iter()
            .map(|t| (t.turn_no, t.forced))
            .collect::<Vec<_>>(),
        vec![(1, true), (2, true)]
    );
    let ops = h.operations(game).await;
    let forced: Vec<_> = ops
        .iter()
        .filter(|o| o.operation == OperationKind::ForceNextTurn)
        .collect();
    assert_eq!(forced.len(), 2);
    assert!(
        forced
            .iter()
            .all(|o| o.outcome == Outcome::Succeeded && o.actor == "system")
    );
}
