//! The lobby and game routes end to end over HTTP, against real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::sync::atomic::Ordering;

use common::{Env, app, call, create, get, new_game, post, token};
use galaxy_core::testing::ADMIN_TOKEN;
use galaxy_lobby::LobbyEvents;
use serde_json::{Value, json};
use uuid::Uuid;

/// The lobby path of a game as the API returned it.
fn game_path(game: &Value) -> String {
    format!("/api/v1/lobby/games/{}", game["id"].as_str().unwrap())
}

fn members(game: &Value) -> Vec<(String, String)> {
    game["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["race_name"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn create_join_leave_start_run_and_cancel() {
    let env = Env::new().await;
    let app = app(&env).await;
    let [owner, bob, carol] = env.accounts(3).await.try_into().unwrap();

    // create: 201, exact shape, creator is the owner member, newest active version
    let mut body = new_game("Zorgons", 2, 3);
    body["settings"] = json!({"galaxy_size": "small"});
    let (status, game) = create(&app, owner, body).await;
    assert_eq!(status, 201, "{game}");
    let mut keys: Vec<&str> = game
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "current_turn",
            "engine_version",
            "id",
            "max_players",
            "members",
            "min_players",
            "name",
            "owner_id",
            "settings",
            "started_at",
            "status",
            "turn_interval_seconds"
        ]
    );
    assert_eq!(game["status"], "open");
    assert_eq!(game["engine_version"], "2.0.0");
    assert_eq!(game["owner_id"], owner.to_string());
    assert_eq!(game["settings"], json!({"galaxy_size": "small"}));
    assert_eq!(game["current_turn"], Value::Null);
    assert_eq!(game["started_at"], Value::Null);
    assert_eq!(members(&game), [("Zorgons".to_owned(), "owner".to_owned())]);
    let mut m_keys: Vec<&str> = game["members"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    m_keys.sort_unstable();
    assert_eq!(m_keys, ["account_id", "joined_at", "race_name", "role"]);
    let id = game["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/lobby/games/{id}");

    // an explicit active version is kept
    let mut explicit = new_game("Others", 1, 2);
    explicit["engine_version"] = json!("1.0.0");
    let (status, other) = create(&app, bob, explicit).await;
    assert_eq!(status, 201);
    assert_eq!(other["engine_version"], "1.0.0");

    // read back, list, filter
    let (status, got) = get(&app, &base, carol).await;
    assert_eq!((status, &got), (200, &game));
    let (status, list) = get(&app, "/api/v1/lobby/games?status=open", carol).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            list["total"].as_i64(),
            list["page"].as_u64(),
            list["page_size"].as_u64()
        ),
        (Some(2), Some(1), Some(50))
    );
    assert_eq!(list["items"][0]["id"], other["id"], "newest first");
    let (_, paged) = get(&app, "/api/v1/lobby/games?page=2&page_size=1", carol).await;
    assert_eq!(
        (
            paged["items"].as_array().unwrap().len(),
            paged["total"].as_i64()
        ),
        (1, Some(2))
    );
    assert_eq!(paged["items"][0]["id"], game["id"]);
    let (_, running) = get(&app, "/api/v1/lobby/games?status=running", carol).await;
    assert_eq!(running["total"], 0);

    // join (bob), join+leave+rejoin (carol)
    let (status, g) = post(
        &app,
        &format!("{base}/join"),
        bob,
        Some(json!({"race_name": "Bobbits"})),
    )
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(members(&g).len(), 2);
    let (status, _) = post(
        &app,
        &format!("{base}/join"),
        carol,
        Some(json!({"race_name": "Carolites"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(&app, &format!("{base}/leave"), carol, None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) AS n FROM game_members WHERE game_id = '{id}' AND left_at IS NOT NULL"
        ))
        .await,
        1
    );
    // her old race name is free again, and she may come back under another
    let (status, g) = post(
        &app,
        &format!("{base}/join"),
        carol,
        Some(json!({"race_name": "Carolingians"})),
    )
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(
        members(&g),
        [
            ("Zorgons".to_owned(), "owner".to_owned()),
            ("Bobbits".to_owned(), "player".to_owned()),
            ("Carolingians".to_owned(), "player".to_owned())
        ]
    );
    assert_eq!(
        env.notifier.kinds(),
        [
            "lobby.member_joined",
            "lobby.member_joined",
            "lobby.member_joined"
        ]
    );

    // start: 202, starting, runtime got every player and the settings
    let (status, g) = post(&app, &format!("{base}/start"), owner, None).await;
    assert_eq!(status, 202, "{g}");
    assert_eq!(g["status"], "starting");
    {
        let starts = env.runtime.starts.lock().unwrap();
        assert_eq!(starts.len(), 1);
        let (spec, actor) = &starts[0];
        assert_eq!(*actor, owner);
        assert_eq!(spec.game_id.to_string(), id);
        assert_eq!(spec.engine_version, "2.0.0");
        assert_eq!(spec.turn_interval_seconds, 60);
        assert_eq!(spec.settings, json!({"galaxy_size": "small"}));
        let races: Vec<&str> = spec.players.iter().map(|p| p.race_name.as_str()).collect();
        assert_eq!(races, ["Zorgons", "Bobbits", "Carolingians"]);
    }
    assert_eq!(
        env.text(&format!("SELECT status AS t FROM games WHERE id = '{id}'"))
            .await
            .as_deref(),
        Some("starting")
    );

    // the engine is healthy: running, started_at, current turn, notification
    let game_id: Uuid = id.parse().unwrap();
    env.runtime.set_turn(game_id, 0);
    assert!(env.lobby.engine_running(game_id).await.unwrap());
    let (_, g) = get(&app, &base, bob).await;
    assert_eq!(g["status"], "running");
    assert!(g["started_at"].is_string());
    assert_eq!(g["current_turn"], 0);
    assert_eq!(env.notifier.kinds().last().unwrap(), "lobby.game_started");
    assert_eq!(
        env.notifier.events.lock().unwrap().last().unwrap().3,
        3,
        "all three members notified"
    );
    assert_eq!(env.count(&format!("SELECT count(*) AS n FROM games WHERE id = '{id}' AND status = 'running' AND started_at IS NOT NULL")).await, 1);

    // cancel the other (open) game: 200, cancelled
    let other_base = game_path(&other);
    let (status, g) = post(&app, &format!("{other_base}/cancel"), bob, None).await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["status"], "cancelled");
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM games WHERE status = 'cancelled' AND finished_at IS NOT NULL"
        )
        .await,
        1
    );

    // the admin list shows every game; a user token is not an admin token
    let admin = |path| call(&app, "GET", path, Some(ADMIN_TOKEN), None);
    let (status, all) = admin("/api/v1/admin/games").await;
    assert_eq!((status, all["total"].as_i64()), (200, Some(2)));
    let (_, cancelled) = admin("/api/v1/admin/games?status=cancelled").await;
    assert_eq!(cancelled["items"][0]["id"], other["id"]);
    let (status, p) = get(&app, "/api/v1/admin/games", owner).await;
    assert_eq!((status, p["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = admin("/api/v1/admin/games?status=bogus").await;
    assert_eq!(status, 400);

    // a restarted process sees exactly what this one served
    let fresh = env.fresh_lobby().await;
    for g in [&game, &other] {
        let id: Uuid = g["id"].as_str().unwrap().parse().unwrap();
        use galaxy_lobby::LobbyService;
        assert_eq!(fresh.game_view(id), env.lobby.game_view(id));
    }
}

#[actix_web::test]
async fn every_conflict_has_its_code() {
    let env = Env::new().await;
    let app = app(&env).await;
    let [owner, bob, carol, dave] = env.accounts(4).await.try_into().unwrap();
    let (_, game) = create(&app, owner, new_game("Zorg", 3, 3)).await;
    let base = game_path(&game);
    let join = |who: Uuid, race: &str| {
        let (app, path, race) = (&app, format!("{base}/join"), race.to_owned());
        async move { post(app, &path, who, Some(json!({ "race_name": race }))).await }
    };
    let expect = |(status, body): (u16, Value), want_status: u16, code: &str| {
        assert_eq!(
            (status, body["code"].as_str()),
            (want_status, Some(code)),
            "{body}"
        );
    };
    let act = |who: Uuid, action: &str| {
        let (app, path) = (&app, format!("{base}/{action}"));
        async move { post(app, &path, who, None).await }
    };

    expect(join(owner, "Again").await, 409, "already_member");
    expect(join(bob, "zORG").await, 409, "race_name_taken");
    assert_eq!(join(bob, "Bob").await.0, 200);
    expect(join(bob, "Bob2").await, 409, "already_member");
    // not enough players to start (2 of 3)
    expect(act(owner, "start").await, 409, "not_enough_players");
    assert_eq!(join(carol, "Carol").await.0, 200);
    expect(join(dave, "Dave").await, 409, "game_full");
    for (who, action, want_status, code) in [
        // leave: owner cannot, a non-member is not a member
        (owner, "leave", 409, "owner_cannot_leave"),
        (dave, "leave", 409, "not_member"),
        // only the owner starts or cancels
        (bob, "start", 403, "not_owner"),
        (dave, "start", 403, "not_owner"),
        (carol, "cancel", 403, "not_owner"),
    ] {
        expect(act(who, action).await, want_status, code);
    }
    assert_eq!(act(owner, "start").await.0, 202);
    // once starting, the lobby is closed
    for (who, action) in [(owner, "start"), (owner, "cancel"), (bob, "leave")] {
        expect(act(who, action).await, 409, "game_not_open");
    }
    let (_, d) = act(bob, "leave").await;
    assert!(d["detail"].as_str().unwrap().contains("starting"), "{d}");
    let (_, small) = create(&app, dave, new_game("Dave", 1, 2)).await;
    let small_base = game_path(&small);
    assert_eq!(
        post(&app, &format!("{small_base}/cancel"), dave, None)
            .await
            .0,
        200
    );
    expect(
        post(
            &app,
            &format!("{small_base}/join"),
            bob,
            Some(json!({"race_name": "B"})),
        )
        .await,
        409,
        "game_not_open",
    );
    expect(
        post(&app, &format!("{small_base}/cancel"), dave, None).await,
        409,
        "game_not_open",
    );

    // unknown game: 404 everywhere
    let ghost = format!("/api/v1/lobby/games/{}", Uuid::now_v7());
    expect(get(&app, &ghost, bob).await, 404, "not_found");
    for action in ["join", "leave", "start", "cancel"] {
        let body = (action == "join").then(|| json!({"race_name": "X"}));
        expect(
            post(&app, &format!("{ghost}/{action}"), bob, body).await,
            404,
            "not_found",
        );
    }

    // engine versions: unknown or deprecated → 400; none active → 409
    for v in ["9.9.9", "0.9.0"] {
        let mut body = new_game("V", 1, 2);
        body["engine_version"] = json!(v);
        expect(
            create(&app, bob, body).await,
            409,
            "engine_version_unavailable",
        );
    }
    env.runtime
        .versions
        .lock()
        .unwrap()
        .iter_mut()
        .for_each(|v| v.1 = false);
    expect(
        create(&app, bob, new_game("V", 1, 2)).await,
        409,
        "no_active_engine_version",
    );
    env.runtime.versions.lock().unwrap()[1].1 = true;

    // a blocked account cannot create or join
    env.accounts.inactive.lock().unwrap().insert(dave);
    expect(
        create(&app, dave, new_game("D", 1, 2)).await,
        403,
        "account_inactive",
    );
    let (_, open) = create(&app, bob, new_game("Open", 1, 4)).await;
    let open_join = format!("{}/join", game_path(&open));
    expect(
        post(&app, &open_join, dave, Some(json!({"race_name": "D"}))).await,
        403,
        "account_inactive",
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM games").await,
        3,
        "nothing written by refusals"
    );
}

#[actix_web::test]
async fn bad_input_is_400_and_writes_nothing() {
    let env = Env::new().await;
    let app = app(&env).await;
    let owner = env.account().await;
    let t = token(owner);
    let fields = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    };

    // wrong JSON types, missing fields, not JSON at all
    for bad in [
        json!({"name": "A", "race_name": "R", "min_players": "two", "max_players": 2, "turn_interval_seconds": 60}),
        json!({"name": 5, "race_name": "R", "min_players": 1, "max_players": 2, "turn_interval_seconds": 60}),
        json!({"race_name": "R", "min_players": 1, "max_players": 2, "turn_interval_seconds": 60}),
        json!({"name": "A", "race_name": "R", "min_players": 1.5, "max_players": 2, "turn_interval_seconds": 60}),
        json!([1, 2]),
    ] {
        let (status, body) = create(&app, owner, bad.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("validation_failed")),
            "{bad} → {body}"
        );
    }
    let raw = actix_web::test::TestRequest::post()
        .uri("/api/v1/lobby/games")
        .insert_header(("Authorization", format!("Bearer {t}")))
        .insert_header(("content-type", "application/json"))
        .set_payload("{not json")
        .to_request();
    assert_eq!(actix_web::test::call_service(&app, raw).await.status(), 400);

    // field rules, every bad field reported at once
    let mut body = new_game("", 3, 2);
    body["name"] = json!("");
    body["turn_interval_seconds"] = json!(5);
    body["settings"] = json!([1]);
    let (status, p) = create(&app, owner, body).await;
    assert_eq!(status, 400);
    assert_eq!(
        fields(&p),
        [
            "name",
            "race_name",
            "max_players",
            "turn_interval_seconds",
            "settings"
        ]
    );
    for (field, value, ok) in [
        ("race_name", json!("x".repeat(33)), false),
        ("race_name", json!("x".repeat(32)), true),
        ("race_name", json!("   "), false),
        ("race_name", json!("Tab\there"), false),
        ("name", json!("n".repeat(65)), false),
        ("min_players", json!(0), false),
        ("max_players", json!(17), false),
        ("max_players", json!(-1), false),
        ("turn_interval_seconds", json!(604_801), false),
        ("turn_interval_seconds", json!(10), true),
        ("turn_interval_seconds", json!(1_u64 << 40), false),
        ("engine_version", json!(""), false),
        ("settings", json!("text"), false),
        ("settings", json!({"big": "y".repeat(17 * 1024)}), false),
        ("settings", Value::Null, true),
    ] {
        let mut body = new_game("Zorg", 1, 2);
        body[field] = value.clone();
        let (status, p) = create(&app, owner, body).await;
        if ok {
            assert_eq!(status, 201, "{field}={value}: {p}");
        } else {
            assert_eq!(status, 400, "{field}={value}");
            assert_eq!(fields(&p), [field], "{field}={value}: {p}");
        }
    }
    let ok_games = env.count("SELECT count(*) AS n FROM games").await;
    assert_eq!(ok_games, 3);

    // join validation, path and query errors
    let (_, game) = create(&app, owner, new_game("Zorg", 1, 3)).await;
    let base = game_path(&game);
    let bob = env.account().await;
    for bad in [
        json!({"race_name": ""}),
        json!({"race_name": "r".repeat(33)}),
        json!({"race_name": 7}),
        json!({}),
    ] {
        let (status, p) = post(&app, &format!("{base}/join"), bob, Some(bad.clone())).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (400, Some("validation_failed")),
            "{bad}"
        );
    }
    for path in [
        "/api/v1/lobby/games/not-a-uuid".to_owned(),
        "/api/v1/lobby/games/123/join".to_owned(),
        "/api/v1/games/xyz/report".to_owned(),
        "/api/v1/lobby/games?page=0".to_owned(),
        "/api/v1/lobby/games?page=-1".to_owned(),
        "/api/v1/lobby/games?status=bogus".to_owned(),
        "/api/v1/lobby/games?page_size=201".to_owned(),
        format!(
            "/api/v1/games/{}/report?turn=-1",
            game["id"].as_str().unwrap()
        ),
    ] {
        let method = if path.ends_with("/join") {
            "POST"
        } else {
            "GET"
        };
        let body = (method == "POST").then(|| json!({"race_name": "X"}));
        let (status, p) = call(&app, method, &path, Some(&token(bob)), body).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (400, Some("validation_failed")),
            "{path}: {p}"
        );
    }
    assert_eq!(
        env.count("SELECT count(*) AS n FROM game_members").await,
        4,
        "no member written by bad joins"
    );

    // no token → 401; wrong method → 405
    let (status, p) = call(&app, "GET", "/api/v1/lobby/games", None, None).await;
    assert_eq!((status, p["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = post(&app, &base, bob, None).await;
    assert_eq!(status, 405);
    let (status, _) = get(&app, &format!("{base}/join"), bob).await;
    assert_eq!(status, 405);
}

#[actix_web::test]
async fn game_routes_are_for_members_and_forward_the_engine() {
    let env = Env::new().await;
    let app = app(&env).await;
    let [owner, bob, eve] = env.accounts(3).await.try_into().unwrap();
    let (_, game) = create(&app, owner, new_game("Zorg", 2, 2)).await;
    let id: Uuid = game["id"].as_str().unwrap().parse().unwrap();
    let lobby_base = format!("/api/v1/lobby/games/{id}");
    let base = format!("/api/v1/games/{id}");
    post(
        &app,
        &format!("{lobby_base}/join"),
        bob,
        Some(json!({"race_name": "Bob"})),
    )
    .await;
    let orders = json!({"orders": [{"type": "build_ships", "count": 3}]});

    // before the engine runs
    let (status, p) = get(&app, &format!("{base}/report"), bob).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("game_not_started"))
    );
    let (status, p) = post(&app, &format!("{base}/orders"), bob, Some(orders.clone())).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("game_not_running"))
    );
    let (status, t) = get(&app, &format!("{base}/turns"), bob).await;
    assert_eq!((status, t), (200, json!([])));

    post(&app, &format!("{lobby_base}/start"), owner, None).await;
    env.runtime.set_turn(id, 2);
    assert!(env.lobby.engine_running(id).await.unwrap());

    // non-members: 403 on every game route; unknown game: 404
    for (method, path, body) in [
        ("GET", format!("{base}/report"), None),
        ("POST", format!("{base}/orders"), Some(orders.clone())),
        ("GET", format!("{base}/turns"), None),
    ] {
        let (status, p) = call(&app, method, &path, Some(&token(eve)), body.clone()).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (403, Some("not_member")),
            "{path}"
        );
        let ghost = path.replace(&id.to_string(), &Uuid::now_v7().to_string());
        let (status, _) = call(&app, method, &ghost, Some(&token(bob)), body).await;
        assert_eq!(status, 404, "{ghost}");
        let (status, _) = call(&app, method, &path, None, None).await;
        assert_eq!(status, 401);
    }

    // the report is the engine's, for the caller's race
    let (status, r) = get(&app, &format!("{base}/report"), bob).await;
    assert_eq!(
        (status, r),
        (
            200,
            json!({"turn": 2, "race": "Bob", "industry": 10, "ships": 0})
        )
    );
    let (_, r) = get(&app, &format!("{base}/report?turn=1"), owner).await;
    assert_eq!(
        (r["turn"].as_u64(), r["race"].as_str()),
        (Some(1), Some("Zorg"))
    );
    let (status, p) = get(&app, &format!("{base}/report?turn=3"), owner).await;
    assert_eq!((status, p["code"].as_str()), (404, Some("not_found")));
    assert!(p["detail"].as_str().unwrap().contains("turn 3"));

    // orders: accepted (202) and forwarded with the caller's race; bad → 400 with the engine's reason
    let (status, body) = post(&app, &format!("{base}/orders"), bob, Some(orders.clone())).await;
    assert_eq!((status, body), (202, Value::Null));
    {
        let sent = env.runtime.orders.lock().unwrap();
        assert_eq!(
            sent.as_slice(),
            [(id, "Bob".to_owned(), orders["orders"].clone())]
        );
    }
    let (status, p) = post(
        &app,
        &format!("{base}/orders"),
        bob,
        Some(json!({"orders": [{"type": "teleport"}]})),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str(), p["detail"].as_str()),
        (
            400,
            Some("rejected_by_engine"),
            Some("unknown order type teleport")
        )
    );
    let (status, p) = post(
        &app,
        &format!("{base}/orders"),
        bob,
        Some(json!({"orders": "nope"})),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (400, Some("validation_failed"))
    );
    assert_eq!(env.runtime.orders.lock().unwrap().len(), 1);

    // turn history
    let (status, t) = get(&app, &format!("{base}/turns"), owner).await;
    assert_eq!(status, 200);
    let turns: Vec<u64> = t
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["turn_no"].as_u64().unwrap())
        .collect();
    assert_eq!(turns, [1, 2]);
    assert_eq!(t[0]["forced"], true);

    // engine unreachable → 503
    env.runtime.engine_down.store(true, Ordering::SeqCst);
    let (status, p) = get(&app, &format!("{base}/report"), bob).await;
    assert_eq!((status, p["code"].as_str()), (503, Some("unavailable")));
    assert!(
        !p["detail"].as_str().unwrap().contains("refused"),
        "engine internals stay in the logs"
    );
}

#[actix_web::test]
async fn a_refused_start_leaves_the_game_open_and_retryable() {
    let env = Env::new().await;
    let app = app(&env).await;
    let owner = env.account().await;
    let (_, game) = create(&app, owner, new_game("Solo", 1, 1)).await;
    let base = game_path(&game);
    env.runtime.refuse_start.store(true, Ordering::SeqCst);
    let (status, p) = post(&app, &format!("{base}/start"), owner, None).await;
    assert_eq!((status, p["code"].as_str()), (503, Some("unavailable")));
    let (_, g) = get(&app, &base, owner).await;
    assert_eq!(g["status"], "open");
    assert_eq!(
        env.text("SELECT status AS t FROM games").await.as_deref(),
        Some("open")
    );
    env.runtime.refuse_start.store(false, Ordering::SeqCst);
    env.runtime.reject_start.store(true, Ordering::SeqCst);
    let (status, p) = post(&app, &format!("{base}/start"), owner, None).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("start_refused")));
    assert!(
        p["detail"].as_str().unwrap().contains("2.0.0 is disabled"),
        "{p}"
    );
    let (_, g) = get(&app, &base, owner).await;
    assert_eq!(g["status"], "open");
    env.runtime.reject_start.store(false, Ordering::SeqCst);
    let (status, g) = post(&app, &format!("{base}/start"), owner, None).await;
    assert_eq!((status, g["status"].as_str()), (202, Some("starting")));
    assert_eq!(env.runtime.starts.lock().unwrap().len(), 1);
}
