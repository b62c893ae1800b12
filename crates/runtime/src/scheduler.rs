//! The turn scheduler: every due game gets exactly one turn per tick, with
//! nothing held across the engine's call (claim, generate, record).

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::AsyncConnection;
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::db::{self, RecordChange};
use crate::error::RuntimeError;
use crate::model::Outcome;
use crate::state::{Runtime, read};

/// How long a claimed turn is invisible to other schedulers: well above the
/// engine's HTTP timeouts (15 s for the turn, then its status).
pub const TURN_CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(60);

impl Runtime {
    pub(crate) fn turn_interval(&self, game_id: Uuid) -> chrono::Duration {
        let secs = read(&self.inner.requests)
            .get(&game_id)
            .map_or(3600, |r| r.turn_interval_seconds);
        chrono::Duration::seconds(i64::from(secs.max(1)))
    }

    /// One scheduler tick: every due game gets exactly one turn. Returns the
    /// number of turns generated.
    pub async fn tick_once(&self) -> Result<usize, RuntimeError> {
        let due = {
            let mut conn = self.conn().await?;
            db::due_games(&mut conn, 500).await?
        };
        let now = Instant::now();
        let due: Vec<Uuid> = {
            let backoff = self
                .inner
                .turn_backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            due.into_iter()
                .filter(|id| backoff.get(id).is_none_or(|(_, at)| *at <= now))
                .collect()
        };
        let results: Vec<_> = futures_util::stream::iter(due)
            .map(|game_id| async move { (game_id, self.run_turn(game_id).await) })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut generated = 0;
        for (game_id, r) in results {
            let mut backoff = self
                .inner
                .turn_backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match r {
                Ok(Some(_)) => {
                    generated += 1;
                    backoff.remove(&game_id);
                }
                Ok(None) => {}
                Err(e) => {
                    let failures = backoff.get(&game_id).map_or(1, |(n, _)| n + 1);
                    let delay =
                        galaxy_queue::Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
                            .delay(failures);
                    backoff.insert(game_id, (failures, Instant::now() + delay));
                    tracing::warn!(%game_id, error = %e, failures, "turn generation failed");
                }
            }
        }
        Ok(generated)
    }

    /// Claims the due turn (one short statement: `turn_claimed_until`), asks
    /// the engine for exactly the next turn with no lock, transaction or
    /// connection held, then records it in a second short transaction. A
    /// process that dies in between leaves a claim that runs out after
    /// [`TURN_CLAIM_LEASE`]; the next claim asks the engine for the same
    /// turn number, which the engine answers idempotently, and a turn
    /// already recorded is never recorded (or announced) twice.
    pub(crate) async fn run_turn(
        &self,
        game_id: Uuid,
    ) -> Result<Option<(i32, bool)>, RuntimeError> {
        let interval = self.turn_interval(game_id);
        let engine = self.inner.engine.clone();
        let claimed = {
            let mut conn = self.conn().await?;
            db::claim_due(&mut conn, game_id, TURN_CLAIM_LEASE).await?
        };
        let Some(record) = claimed else {
            return Ok(None);
        };
        let forced = record.skip_next_wait;
        let wanted = record.current_turn + 1;
        let started = Instant::now();
        let answer = match record.endpoint.as_deref() {
            None => Err((RuntimeError::EngineUnavailable("no endpoint".into()), None)),
            Some(endpoint) => match engine.generate_turn(endpoint, wanted).await {
                Ok(turn) => Ok(turn),
                // The engine may be ahead (an answer lost earlier): adopt
                // its turn so the next request matches.
                Err(e) => Err((e, engine.current_turn(endpoint).await.ok())),
            },
        };
        let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let mut conn = self.conn().await?;
        match answer {
            Ok(turn) => {
                let recorded = conn
                    .transaction(async move |c| {
                        let Some(now) = db::lock_record(c, game_id).await? else {
                            return Ok::<_, RuntimeError>(None);
                        };
                        if now.current_turn >= turn {
                            // A claim that took over after ours ran out
                            // recorded this turn already.
                            return Ok(None);
                        }
                        db::insert_turn(c, game_id, turn, ms, forced).await?;
                        let announced = self
                            .inner
                            .events
                            .turn_generated(c, game_id, u32::try_from(turn).unwrap_or(0), forced)
                            .await
                            .map_err(RuntimeError::Reaction)?;
                        let r = db::update_record(
                            c,
                            game_id,
                            RecordChange {
                                current_turn: Some(turn),
                                // A force requested while this turn ran
                                // stays pending for the next tick.
                                skip_next_wait: forced.then_some(false),
                                next_turn_at: Some(Some(Utc::now() + interval)),
                                last_error: Some(None),
                                turn_claimed_until: Some(None),
                                ..RecordChange::default()
                            },
                        )
                        .await?;
                        if forced {
                            db::finish_force_ops(
                                c,
                                game_id,
                                Outcome::Succeeded,
                                None,
                                &json!({"turn": turn}),
                            )
                            .await?;
                        }
                        Ok(Some((r, announced)))
                    })
                    .await?;
                drop(conn);
                let Some((record, announced)) = recorded else {
                    return Ok(None);
                };
                self.cache(record);
                galaxy_core::failpoint::hit("runtime.turn_generated");
                announced.await;
                Ok(Some((turn, forced)))
            }
            Err((e, engine_turn)) => {
                // A forced turn is one attempt: its operation fails and the
                // flag is cleared; the regular schedule retries with backoff.
                let text = format!("turn {wanted}: {e}");
                let mut change = RecordChange {
                    last_error: Some(Some(text.clone())),
                    turn_claimed_until: Some(None),
                    current_turn: engine_turn,
                    ..RecordChange::default()
                };
                let record = conn
                    .transaction(async move |c| {
                        if forced {
                            change.skip_next_wait = Some(false);
                            db::finish_force_ops(
                                c,
                                game_id,
                                Outcome::Failed,
                                Some(&text),
                                &json!({}),
                            )
                            .await?;
                        }
                        db::update_record(c, game_id, change).await
                    })
                    .await?;
                drop(conn);
                self.cache(record);
                Err(e)
            }
        }
    }
}
