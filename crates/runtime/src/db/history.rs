//! SQL of the turn history and the operation log: append-only rows the
//! scheduler, the operations and the reconciler write, and the admin reads.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{GameTurn, Operation, OperationKind, Outcome};
use crate::schema::{game_turns, runtime_operation_log};

pub async fn insert_turn(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    turn_no: i32,
    duration_ms: i32,
    forced: bool,
) -> QueryResult<()> {
    diesel::insert_into(game_turns::table)
        .values((
            game_turns::game_id.eq(game_id),
            game_turns::turn_no.eq(turn_no),
            game_turns::duration_ms.eq(duration_ms),
            game_turns::forced.eq(forced),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(drop)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = game_turns, check_for_backend(diesel::pg::Pg))]
struct TurnRow {
    game_id: Uuid,
    turn_no: i32,
    generated_at: DateTime<Utc>,
    duration_ms: i32,
    forced: bool,
}

pub async fn turns(conn: &mut AsyncPgConnection, game_id: Uuid) -> QueryResult<Vec<GameTurn>> {
    let rows: Vec<TurnRow> = game_turns::table
        .filter(game_turns::game_id.eq(game_id))
        .order(game_turns::turn_no.asc())
        .select(TurnRow::as_select())
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| GameTurn {
            game_id: r.game_id,
            turn_no: r.turn_no,
            generated_at: r.generated_at,
            duration_ms: r.duration_ms,
            forced: r.forced,
        })
        .collect())
}

pub async fn insert_operation(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    kind: OperationKind,
    actor: &str,
    details: &Value,
) -> QueryResult<Uuid> {
    let id = galaxy_core::new_id();
    diesel::insert_into(runtime_operation_log::table)
        .values((
            runtime_operation_log::id.eq(id),
            runtime_operation_log::game_id.eq(game_id),
            runtime_operation_log::operation.eq(kind.as_str()),
            runtime_operation_log::actor.eq(actor),
            runtime_operation_log::details.eq(details),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Finishes one running operation; `extra` is merged into its details.
pub async fn finish_operation(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    outcome: Outcome,
    error: Option<&str>,
    extra: &Value,
) -> QueryResult<()> {
    finish_running(conn, "id = $1", id, outcome, error, extra)
        .await
        .map(drop)
}

/// Finishes every pending force-next-turn of a game (the flag they set was
/// consumed, or its turn failed).
pub async fn finish_force_ops(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    outcome: Outcome,
    error: Option<&str>,
    extra: &Value,
) -> QueryResult<usize> {
    let filter = "game_id = $1 AND operation = 'force_next_turn'";
    finish_running(conn, filter, game_id, outcome, error, extra).await
}

/// Finishes the running operations `filter` selects (by `key`, its `$1`):
/// outcome, finish time and error set, `extra` merged into their details.
async fn finish_running(
    conn: &mut AsyncPgConnection,
    filter: &'static str,
    key: Uuid,
    outcome: Outcome,
    error: Option<&str>,
    extra: &Value,
) -> QueryResult<usize> {
    galaxy_db::sql(format!(
        "UPDATE runtime_operation_log SET outcome = $2, finished_at = now(), \
         error_message = $3, details = details || $4 WHERE {filter} AND outcome = 'running'"
    ))
    .bind::<SqlUuid, _>(key)
    .bind::<diesel::sql_types::Text, _>(outcome.as_str())
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(error)
    .bind::<diesel::sql_types::Jsonb, _>(extra)
    .execute(conn)
    .await
}

/// Container operations still `running` long after any live process would
/// have finished them (their process died) can never finish: fail them.
pub async fn fail_interrupted_operations(
    conn: &mut AsyncPgConnection,
    started_before: DateTime<Utc>,
) -> QueryResult<usize> {
    use runtime_operation_log::dsl as o;
    diesel::update(
        o::runtime_operation_log
            .filter(o::outcome.eq("running"))
            .filter(o::operation.ne("force_next_turn"))
            .filter(o::started_at.lt(started_before)),
    )
    .set((
        o::outcome.eq(Outcome::Failed.as_str()),
        o::finished_at.eq(diesel::dsl::now),
        o::error_message.eq("interrupted: the process running the operation stopped"),
    ))
    .execute(conn)
    .await
}

/// Games with a container operation still running (in any process) that
/// started after `started_after` (older ones are interrupted, see
/// [`fail_interrupted_operations`]). The reconciler leaves them to it.
pub async fn games_with_running_operations(
    conn: &mut AsyncPgConnection,
    started_after: DateTime<Utc>,
) -> QueryResult<std::collections::HashSet<Uuid>> {
    use runtime_operation_log::dsl as o;
    let ids: Vec<Uuid> = o::runtime_operation_log
        .filter(o::outcome.eq("running"))
        .filter(o::operation.ne("force_next_turn"))
        .filter(o::started_at.ge(started_after))
        .select(o::game_id)
        .distinct()
        .load(conn)
        .await?;
    Ok(ids.into_iter().collect())
}

galaxy_db::page_of_children!(
    /// One page of a game's operations, newest first, and their total.
    pub fn operations: runtime_operation_log by game_id as Operation,
    order by (runtime_operation_log::started_at.desc(), runtime_operation_log::id.desc())
);

/// The start request each game was last started with (kept in the details
/// of its start operations, see decision RUNTIME-2).
pub async fn latest_start_requests(
    conn: &mut AsyncPgConnection,
) -> QueryResult<Vec<(Uuid, Value)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        game_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        request: Value,
    }
    let rows: Vec<Row> = galaxy_db::sql(
        "SELECT DISTINCT ON (game_id) game_id, details -> 'request' AS request \
         FROM runtime_operation_log WHERE operation = 'start' AND details ? 'request' \
         ORDER BY game_id, started_at DESC, id DESC",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.game_id, r.request)).collect())
}
