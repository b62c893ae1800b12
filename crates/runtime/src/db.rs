//! SQL of the runtime module: plain functions over a connection. Every
//! record change is a targeted UPDATE that returns the whole row, so the
//! cache is replaced by what PostgreSQL holds and concurrent writers (the
//! scheduler, an operation, the reconciler) never overwrite each other's
//! columns with stale copies.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_db::announce::announce;
use uuid::Uuid;

use crate::model::{
    DesiredState, EngineVersion, EngineVersionStatus, ObservedState, OperationKind, RuntimeRecord,
};
use crate::schema::{engine_versions, runtime_records};

/// The channels on which record and engine-version writes are announced to
/// the other backends (see `coherence`); every write below announces.
pub(crate) const RECORDS: &str = "galaxy_runtime_records";
pub(crate) const VERSIONS: &str = "galaxy_runtime_versions";

mod history;
pub use history::{
    fail_interrupted_operations, finish_force_ops, finish_operation, games_with_running_operations,
    insert_operation, insert_turn, latest_start_requests, operations, turns,
};

pub async fn load_versions(conn: &mut AsyncPgConnection) -> QueryResult<Vec<EngineVersion>> {
    engine_versions::table
        .select(EngineVersion::as_select())
        .order(engine_versions::created_at.asc())
        .load(conn)
        .await
}

/// Tells peers the versions changed when `row` was written (`None`: nothing
/// was) and returns it as the service holds it.
async fn version_announced(
    conn: &mut AsyncPgConnection,
    row: Option<EngineVersion>,
) -> QueryResult<Option<EngineVersion>> {
    if row.is_some() {
        // The table is small: any change reloads it whole.
        announce(conn, VERSIONS, [Uuid::nil()]).await?;
    }
    Ok(row)
}

/// `None` when the version already exists.
pub async fn insert_version(
    conn: &mut AsyncPgConnection,
    version: &str,
    image: &str,
) -> QueryResult<Option<EngineVersion>> {
    let row: Option<EngineVersion> = diesel::insert_into(engine_versions::table)
        .values((
            engine_versions::version.eq(version),
            engine_versions::image.eq(image),
        ))
        .on_conflict_do_nothing()
        .returning(EngineVersion::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    version_announced(conn, row).await
}

pub async fn set_version_status(
    conn: &mut AsyncPgConnection,
    version: &str,
    status: EngineVersionStatus,
) -> QueryResult<Option<EngineVersion>> {
    let row: Option<EngineVersion> = diesel::update(engine_versions::table.find(version))
        .set(engine_versions::status.eq(status.as_str()))
        .returning(EngineVersion::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    version_announced(conn, row).await
}

/// The `updated_at` of a write: after the row's previous one even within one
/// transaction or on a clock that stepped back, taken once the row is
/// locked — so it follows the commit order of the row's writes.
fn bumped() -> diesel::expression::SqlLiteral<diesel::sql_types::Timestamptz> {
    diesel::dsl::sql(
        "GREATEST(runtime_records.updated_at + interval '1 microsecond', clock_timestamp())",
    )
}

pub async fn load_records(conn: &mut AsyncPgConnection) -> QueryResult<Vec<RuntimeRecord>> {
    runtime_records::table
        .select(RuntimeRecord::as_select())
        .load(conn)
        .await
}

/// A partial update of a record; `None` leaves a column as it is,
/// `Some(None)` sets a nullable column to NULL.
#[derive(AsChangeset, Default)]
#[diesel(table_name = runtime_records)]
pub struct RecordChange {
    pub desired_state: Option<&'static str>,
    pub observed_state: Option<&'static str>,
    pub container_id: Option<Option<String>>,
    pub engine_version: Option<String>,
    pub image: Option<String>,
    pub endpoint: Option<Option<String>>,
    pub current_turn: Option<i32>,
    pub next_turn_at: Option<Option<DateTime<Utc>>>,
    pub skip_next_wait: Option<bool>,
    pub last_error: Option<Option<String>>,
    pub last_reconciled_at: Option<Option<DateTime<Utc>>>,
    pub turn_claimed_until: Option<Option<DateTime<Utc>>>,
}

impl RecordChange {
    pub fn observed(state: ObservedState) -> Self {
        Self {
            observed_state: Some(state.as_str()),
            ..Self::default()
        }
    }
}

/// Tells peers the record changed and returns it as the service holds it.
async fn announced(conn: &mut AsyncPgConnection, row: RuntimeRecord) -> QueryResult<RuntimeRecord> {
    announce(conn, RECORDS, [row.game_id]).await?;
    Ok(row)
}

pub async fn update_record(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    change: RecordChange,
) -> QueryResult<RuntimeRecord> {
    let row: RuntimeRecord = diesel::update(runtime_records::table.find(game_id))
        .set((&change, runtime_records::updated_at.eq(bumped())))
        .returning(RuntimeRecord::as_returning())
        .get_result(conn)
        .await?;
    announced(conn, row).await
}

/// Logs an operation on the game and applies its change to the record (the
/// caller holds the transaction); returns the operation's id and the record.
pub async fn log_and_update(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    kind: OperationKind,
    actor: &str,
    details: &serde_json::Value,
    change: RecordChange,
) -> QueryResult<(Uuid, RuntimeRecord)> {
    let op = insert_operation(conn, game_id, kind, actor, details).await?;
    let record = update_record(conn, game_id, change).await?;
    Ok((op, record))
}

/// Creates the record for a first start, or re-arms an existing one (a
/// retried start keeps the turn number and schedule of the volume's game).
pub async fn upsert_starting_record(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    container_name: &str,
    engine_version: &str,
    image: &str,
) -> QueryResult<RuntimeRecord> {
    let now = Utc::now();
    let row: RuntimeRecord = diesel::insert_into(runtime_records::table)
        .values((
            runtime_records::game_id.eq(game_id),
            runtime_records::desired_state.eq(DesiredState::Running.as_str()),
            runtime_records::observed_state.eq(ObservedState::Starting.as_str()),
            runtime_records::container_name.eq(container_name),
            runtime_records::engine_version.eq(engine_version),
            runtime_records::image.eq(image),
            runtime_records::updated_at.eq(now),
        ))
        .on_conflict(runtime_records::game_id)
        .do_update()
        .set((
            runtime_records::desired_state.eq(DesiredState::Running.as_str()),
            runtime_records::observed_state.eq(ObservedState::Starting.as_str()),
            runtime_records::engine_version.eq(engine_version),
            runtime_records::image.eq(image),
            runtime_records::last_error.eq(None::<String>),
            runtime_records::updated_at.eq(bumped()),
        ))
        .returning(RuntimeRecord::as_returning())
        .get_result(conn)
        .await?;
    announced(conn, row).await
}

/// Whether a record is due for a turn at `now`: wanted and seen running,
/// its wait over (or skipped), and not claimed by someone whose claim has
/// not run out.
#[diesel::dsl::auto_type(no_type_alias)]
fn due_at(now: DateTime<Utc>) -> _ {
    let wanted: &'static str = DesiredState::Running.as_str();
    let seen: &'static str = ObservedState::Running.as_str();
    runtime_records::desired_state
        .eq(wanted)
        .and(runtime_records::observed_state.eq(seen))
        .and(
            runtime_records::skip_next_wait
                .eq(true)
                .or(runtime_records::next_turn_at.le(now)),
        )
        .and(
            runtime_records::turn_claimed_until
                .is_null()
                .or(runtime_records::turn_claimed_until.lt(now)),
        )
}

/// Claims a record that is due for a turn until `now + lease`, in one
/// statement: the claim that makes a turn happen once per due tick. A record
/// claimed by someone else (whose claim has not run out) is not due.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    lease: chrono::Duration,
) -> QueryResult<Option<RuntimeRecord>> {
    let now = Utc::now();
    let row: Option<RuntimeRecord> =
        diesel::update(runtime_records::table.find(game_id).filter(due_at(now)))
            .set((
                runtime_records::turn_claimed_until.eq(now + lease),
                runtime_records::updated_at.eq(bumped()),
            ))
            .returning(RuntimeRecord::as_returning())
            .get_result(conn)
            .await
            .optional()?;
    announce(conn, RECORDS, row.iter().map(|r| r.game_id)).await?;
    Ok(row)
}

/// Locks one record for the rest of the transaction.
pub async fn lock_record(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
) -> QueryResult<Option<RuntimeRecord>> {
    runtime_records::table
        .find(game_id)
        .select(RuntimeRecord::as_select())
        .for_update()
        .get_result(conn)
        .await
        .optional()
}

/// Games due for a turn (unlocked scan; each is then claimed).
pub async fn due_games(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Uuid>> {
    runtime_records::table
        .filter(due_at(Utc::now()))
        .select(runtime_records::game_id)
        .order(runtime_records::next_turn_at.asc().nulls_first())
        .limit(limit)
        .load(conn)
        .await
}

pub async fn touch_reconciled(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<RuntimeRecord>> {
    let rows: Vec<RuntimeRecord> =
        diesel::update(runtime_records::table.filter(runtime_records::game_id.eq_any(ids)))
            .set((
                runtime_records::last_reconciled_at.eq(Utc::now()),
                runtime_records::updated_at.eq(bumped()),
            ))
            .returning(RuntimeRecord::as_returning())
            .get_results(conn)
            .await?;
    announce(conn, RECORDS, rows.iter().map(|r| r.game_id)).await?;
    Ok(rows)
}

/// Engine containers by observed state (the containers gauge).
pub async fn container_counts(
    conn: &mut AsyncPgConnection,
) -> QueryResult<Vec<(ObservedState, i64)>> {
    use runtime_records::dsl as r;
    let rows: Vec<(String, i64)> = r::runtime_records
        .group_by(r::observed_state)
        .select((r::observed_state, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(state, n)| Some((ObservedState::parse(&state)?, n)))
        .collect())
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

/// Every game with a runtime record, that is every game whose engine volume
/// may exist (for tools that clean a stack up); none before the migrations
/// created the table.
pub async fn recorded_games(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Uuid>> {
    let table: Present =
        diesel::sql_query("SELECT to_regclass('runtime_records') IS NOT NULL AS present")
            .get_result(conn)
            .await?;
    if !table.present {
        return Ok(Vec::new());
    }
    runtime_records::table
        .select(runtime_records::game_id)
        .load(conn)
        .await
}
