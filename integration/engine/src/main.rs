//! `galaxy-engine`: the reference game engine. One process per game, started
//! by the backend with `GALAXY_START_CONFIG`; state lives in the data
//! directory (`/data`, a named volume) so a restart or an image change keeps
//! the game.
//!
//! Environment: `GALAXY_START_CONFIG` (required), `GALAXY_ENGINE_LISTEN_ADDR`
//! (default `0.0.0.0:8080`), `GALAXY_ENGINE_DATA_DIR` (default `/data`).
//! Exit codes: 78 (`EX_CONFIG`) for a rejected start config, 1 for any other
//! start failure.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support")]

mod rules;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data, Path, Query};
use actix_web::{App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::{Value, json};

use rules::{Game, RuleError, StartConfig};
use store::Store;

const EX_CONFIG: u8 = 78;

struct Engine {
    game: Mutex<Game>,
    store: Store,
}

impl Engine {
    /// Applies `change` to a copy, persists it, and only then makes it the
    /// current state: a failed write changes nothing.
    fn update<T>(&self, change: impl FnOnce(&mut Game) -> Result<T, RuleError>) -> HttpResponse
    where
        T: serde::Serialize,
    {
        let mut game = self
            .game
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = game.clone();
        match change(&mut next) {
            Ok(answer) => match self.store.save(&next) {
                Ok(()) => {
                    *game = next;
                    HttpResponse::Ok().json(answer)
                }
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            Err(e) => rule_error(e),
        }
    }
}

fn error(status: StatusCode, reason: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": reason.into() }))
}

fn rule_error(e: RuleError) -> HttpResponse {
    match e {
        RuleError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        RuleError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn status(engine: Data<Engine>) -> HttpResponse {
    let game = engine
        .game
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    HttpResponse::Ok().json(json!({
        "game_id": game.config.game_id,
        "turn": game.turn(),
        "players": game.config.players,
    }))
}

/// Optional body of `POST /v1/turns`: `{"turn": N}` asks for turn N exactly,
/// so a caller retrying after a lost answer never generates two turns.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnRequest {
    turn: u32,
}

async fn next_turn(engine: Data<Engine>, body: Bytes) -> HttpResponse {
    let wanted = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<TurnRequest>(&body) {
            Ok(r) => Some(r.turn),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
        }
    };
    {
        let game = engine
            .game
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match wanted {
            Some(t) if t == game.turn() => {
                return HttpResponse::Ok().json(json!({"turn": t, "generated": false}));
            }
            Some(t) if t != game.turn() + 1 => {
                return error(
                    StatusCode::CONFLICT,
                    format!(
                        "turn {t} cannot be generated: the current turn is {}",
                        game.turn()
                    ),
                );
            }
            _ => {}
        }
    }
    engine.update(|g| Ok(json!({"turn": g.next_turn(), "generated": true})))
}

async fn submit_orders(engine: Data<Engine>, race: Path<String>, body: Bytes) -> HttpResponse {
    let orders: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("orders are not JSON: {e}")),
    };
    engine.update(|g| {
        let count = g.submit(&race, &orders)?;
        Ok(json!({"turn": g.turn() + 1, "orders": count}))
    })
}

#[derive(Deserialize)]
struct ReportQuery {
    turn: Option<String>,
}

async fn report(engine: Data<Engine>, race: Path<String>, q: Query<ReportQuery>) -> HttpResponse {
    let turn = match q.turn.as_deref() {
        None | Some("") => None,
        Some(t) => match t.parse::<u32>() {
            Ok(t) => Some(t),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "turn must be a non-negative integer",
                );
            }
        },
    };
    let game = engine
        .game
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match game.report(&race, turn) {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => rule_error(e),
    }
}

async fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Reads the start config and the stored game; `Err((code, reason))` exits.
fn boot(data_dir: &std::path::Path) -> Result<(Game, Store), (u8, String)> {
    let raw = std::env::var("GALAXY_START_CONFIG")
        .map_err(|_| (EX_CONFIG, "GALAXY_START_CONFIG is not set".to_owned()))?;
    let config = StartConfig::parse(&raw).map_err(|e| (EX_CONFIG, e))?;
    let store = Store::new(data_dir);
    let game = match store.load().map_err(|e| (1, e))? {
        Some(stored) if stored.config.game_id != config.game_id => {
            return Err((
                EX_CONFIG,
                format!(
                    "the data directory holds game {}, not {}",
                    stored.config.game_id, config.game_id
                ),
            ));
        }
        // A restart or a new image: the stored game goes on.
        Some(stored) => stored,
        None => {
            let game = Game::new(config);
            store.save(&game).map_err(|e| (1, e))?;
            game
        }
    };
    Ok((game, store))
}

fn main() -> ExitCode {
    let listen =
        std::env::var("GALAXY_ENGINE_LISTEN_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let data_dir =
        PathBuf::from(std::env::var("GALAXY_ENGINE_DATA_DIR").unwrap_or_else(|_| "/data".into()));
    let (game, store) = match boot(&data_dir) {
        Ok(v) => v,
        Err((code, reason)) => {
            eprintln!("galaxy-engine: {reason}");
            return ExitCode::from(code);
        }
    };
    eprintln!(
        "galaxy-engine: game {} at turn {}, listening on {listen}",
        game.config.game_id,
        game.turn()
    );
    let engine = Data::new(Engine {
        game: Mutex::new(game),
        store,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let served = runtime.block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(engine.clone())
                .app_data(web::JsonConfig::default().limit(64 * 1024))
                .route("/healthz", web::get().to(healthz))
                .route("/v1/status", web::get().to(status))
                .route("/v1/turns", web::post().to(next_turn))
                .route("/v1/players/{race}/orders", web::post().to(submit_orders))
                .route("/v1/players/{race}/report", web::get().to(report))
                .default_service(web::to(not_found))
        })
        .workers(2)
        .shutdown_timeout(5)
        .bind(&listen)?
        .run()
        .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("galaxy-engine: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test;

    use super::*;

    fn engine() -> (Data<Engine>, PathBuf) {
        let dir = std::env::temp_dir().join(format!("galaxy-engine-http-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = StartConfig::parse(
            &json!({"game_id": uuid::Uuid::nil(), "players": [{"account_id": uuid::Uuid::nil(), "race_name": "Zorg"}]})
                .to_string(),
        )
        .unwrap();
        let store = Store::new(&dir);
        let game = Game::new(config);
        store.save(&game).unwrap();
        (
            Data::new(Engine {
                game: Mutex::new(game),
                store,
            }),
            dir,
        )
    }

    /// `POST /v1/players/Zorg/orders` with `body`, through the test service.
    macro_rules! post_orders {
        ($app:expr, $body:expr) => {
            test::TestRequest::post()
                .uri("/v1/players/Zorg/orders")
                .set_payload($body)
                .send_request(&$app)
        };
    }

    macro_rules! app {
        ($engine:expr) => {
            test::init_service(
                App::new()
                    .app_data($engine.clone())
                    .route("/v1/status", web::get().to(status))
                    .route("/v1/turns", web::post().to(next_turn))
                    .route("/v1/players/{race}/orders", web::post().to(submit_orders))
                    .route("/v1/players/{race}/report", web::get().to(report)),
            )
            .await
        };
    }

    #[actix_web::test]
    async fn protocol_round_trip_with_persistence() {
        let (engine, dir) = engine();
        let app = app!(engine);
        let bad = post_orders!(app, r#"[{"type":"build_ships","count":11}]"#).await;
        assert_eq!(bad.status(), 400);
        let body: Value = test::read_body_json(bad).await;
        assert!(body["error"].as_str().unwrap().contains("between 1 and"));

        let ok = post_orders!(app, r#"[{"type":"build_ships","count":3}]"#).await;
        assert_eq!(ok.status(), 200);

        // Idempotent turn request: asking for turn 1 twice generates it once.
        for _ in 0..2 {
            let r: Value = test::call_and_read_body_json(
                &app,
                test::TestRequest::post()
                    .uri("/v1/turns")
                    .set_payload(r#"{"turn":1}"#)
                    .to_request(),
            )
            .await;
            assert_eq!(r["turn"], 1);
        }
        let conflict = test::TestRequest::post()
            .uri("/v1/turns")
            .set_payload(r#"{"turn":5}"#)
            .send_request(&app)
            .await;
        assert_eq!(conflict.status(), 409);

        let report: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .uri("/v1/players/Zorg/report")
                .to_request(),
        )
        .await;
        assert_eq!(
            report,
            json!({"turn": 1, "race": "Zorg", "industry": 10, "ships": 3})
        );
        for uri in ["/v1/players/Zorg/report?turn=2", "/v1/players/Nope/report"] {
            let r = test::TestRequest::get().uri(uri).send_request(&app).await;
            assert_eq!(r.status(), 404, "{uri}");
        }
        let r = test::TestRequest::get()
            .uri("/v1/players/Zorg/report?turn=-1")
            .send_request(&app)
            .await;
        assert_eq!(r.status(), 400);

        // The state on disk is what a restarted engine continues from.
        let stored = Store::new(&dir).load().unwrap().unwrap();
        assert_eq!(stored.turn(), 1);
        assert_eq!(stored.report("Zorg", None).unwrap().ships, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
