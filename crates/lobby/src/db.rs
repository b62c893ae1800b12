//! Database access: plain functions over a connection, no caching here.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::{Game, Member, MemberRole, UnknownWord};
use crate::schema::{game_members, games};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = games, check_for_backend(diesel::pg::Pg))]
pub(crate) struct GameRow {
    pub id: Uuid,
    pub name: String,
    pub owner_id: Uuid,
    pub engine_version: String,
    pub status: String,
    pub min_players: i32,
    pub max_players: i32,
    pub turn_interval_seconds: i32,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = game_members, check_for_backend(diesel::pg::Pg))]
pub(crate) struct MemberRow {
    pub game_id: Uuid,
    pub account_id: Uuid,
    pub race_name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = games)]
pub(crate) struct NewGameRow<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub owner_id: Uuid,
    pub engine_version: &'a str,
    pub min_players: i32,
    pub max_players: i32,
    pub turn_interval_seconds: i32,
    pub settings: &'a serde_json::Value,
}

fn to_u32(v: i32) -> u32 {
    // CHECK constraints keep these positive; clamp rather than wrap if not.
    u32::try_from(v).unwrap_or(0)
}

impl MemberRow {
    pub fn into_member(self) -> Result<Member, UnknownWord> {
        Ok(Member {
            account_id: self.account_id,
            race_name: self.race_name,
            role: self.role.parse()?,
            joined_at: self.joined_at,
        })
    }
}

impl GameRow {
    /// The cache's view of a game; `members` must be its current members.
    pub fn into_game(self, members: Vec<MemberRow>) -> Result<Game, UnknownWord> {
        let mut members = members
            .into_iter()
            .map(MemberRow::into_member)
            .collect::<Result<Vec<_>, _>>()?;
        sort_members(&mut members);
        Ok(Game {
            id: self.id,
            name: self.name,
            owner_id: self.owner_id,
            engine_version: self.engine_version,
            status: self.status.parse()?,
            min_players: to_u32(self.min_players),
            max_players: to_u32(self.max_players),
            turn_interval_seconds: to_u32(self.turn_interval_seconds),
            settings: self.settings,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            members,
        })
    }
}

/// Members in join order (the owner first, as they joined first).
pub(crate) fn sort_members(members: &mut [Member]) {
    members.sort_by(|a, b| {
        (a.joined_at, a.role != MemberRole::Owner, a.account_id).cmp(&(
            b.joined_at,
            b.role != MemberRole::Owner,
            b.account_id,
        ))
    });
}

/// Games and their current memberships: every one (`None`, cache warm-up)
/// or just these (a peer changed them).
pub(crate) async fn load(
    conn: &mut AsyncPgConnection,
    ids: Option<&[Uuid]>,
) -> QueryResult<(Vec<GameRow>, Vec<MemberRow>)> {
    let mut games = games::table.select(GameRow::as_select()).into_boxed();
    let mut members = game_members::table
        .filter(game_members::left_at.is_null())
        .select(MemberRow::as_select())
        .into_boxed();
    if let Some(ids) = ids {
        games = games.filter(games::id.eq_any(ids));
        members = members.filter(game_members::game_id.eq_any(ids));
    }
    Ok((games.load(conn).await?, members.load(conn).await?))
}

/// Reads and row-locks a game until the transaction ends, so membership
/// changes of one game are serialised across processes.
pub(crate) async fn lock_game(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<GameRow>> {
    games::table
        .find(id)
        .for_update()
        .select(GameRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub(crate) async fn current_members(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
) -> QueryResult<Vec<MemberRow>> {
    game_members::table
        .filter(game_members::game_id.eq(game_id))
        .filter(game_members::left_at.is_null())
        .select(MemberRow::as_select())
        .load(conn)
        .await
}

pub(crate) async fn insert_game(
    conn: &mut AsyncPgConnection,
    row: &NewGameRow<'_>,
) -> QueryResult<GameRow> {
    diesel::insert_into(games::table)
        .values(row)
        .returning(GameRow::as_returning())
        .get_result(conn)
        .await
}

/// Adds a member, or re-admits one who left earlier (the primary key is
/// `(game_id, account_id)`, so a returning player reuses their row).
pub(crate) async fn upsert_member(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    account_id: Uuid,
    race_name: &str,
    role: MemberRole,
) -> QueryResult<MemberRow> {
    use game_members::dsl;
    diesel::insert_into(game_members::table)
        .values((
            dsl::game_id.eq(game_id),
            dsl::account_id.eq(account_id),
            dsl::race_name.eq(race_name),
            dsl::role.eq(role.as_str()),
        ))
        .on_conflict((dsl::game_id, dsl::account_id))
        .do_update()
        .set((
            dsl::race_name.eq(race_name),
            dsl::role.eq(role.as_str()),
            dsl::joined_at.eq(diesel::dsl::now),
            dsl::left_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(MemberRow::as_returning())
        .get_result(conn)
        .await
}

/// Marks a current membership as left; returns whether one was.
pub(crate) async fn mark_left(
    conn: &mut AsyncPgConnection,
    game_id: Uuid,
    account_id: Uuid,
) -> QueryResult<bool> {
    use game_members::dsl;
    let n = diesel::update(
        dsl::game_members
            .filter(dsl::game_id.eq(game_id))
            .filter(dsl::account_id.eq(account_id))
            .filter(dsl::left_at.is_null()),
    )
    .set(dsl::left_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// What a status change also stamps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamp {
    None,
    StartedAt,
    FinishedAt,
}

/// Moves a game from `from` to `to`; `None` when the game is not in `from`
/// (someone else moved it first), so transitions are compare-and-set.
pub(crate) async fn transition(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    from: &str,
    to: &str,
    stamp: Stamp,
) -> QueryResult<Option<GameRow>> {
    use games::dsl;
    let target = dsl::games
        .filter(dsl::id.eq(id))
        .filter(dsl::status.eq(from));
    let q = diesel::update(target);
    match stamp {
        Stamp::None => {
            q.set(dsl::status.eq(to))
                .returning(GameRow::as_returning())
                .get_result(conn)
                .await
        }
        Stamp::StartedAt => {
            q.set((dsl::status.eq(to), dsl::started_at.eq(diesel::dsl::now)))
                .returning(GameRow::as_returning())
                .get_result(conn)
                .await
        }
        Stamp::FinishedAt => {
            q.set((dsl::status.eq(to), dsl::finished_at.eq(diesel::dsl::now)))
                .returning(GameRow::as_returning())
                .get_result(conn)
                .await
        }
    }
    .optional()
}
