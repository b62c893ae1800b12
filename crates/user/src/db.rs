//! Database functions over the `accounts` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_db::page_runs::Pages;
use uuid::Uuid;

use galaxy_db::announce::announce;

use crate::model::{Account, AccountStatus};
use crate::schema::accounts;

#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = accounts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct AccountRow {
    id: Uuid,
    email: String,
    display_name: String,
    declared_country: Option<String>,
    status: String,
    created_at: DateTime<Utc>,
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            id: r.id,
            email: r.email,
            display_name: r.display_name,
            declared_country: r.declared_country,
            // The column's CHECK constraint admits only the three states.
            status: AccountStatus::parse(&r.status).unwrap_or(AccountStatus::Blocked),
            created_at: r.created_at,
        }
    }
}

/// The channel on which account changes are announced to every backend:
/// every write below announces the account it changed, in its transaction.
pub(crate) const CHANNEL: &str = "galaxy_user_accounts";

/// One account as committed.
pub(crate) async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Account>> {
    accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first::<AccountRow>(conn)
        .await
        .optional()
        .map(|r| r.map(Account::from))
}

/// Those of `ids` that exist, as committed.
pub(crate) async fn load_many(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<Account>> {
    let rows: Vec<AccountRow> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .select(AccountRow::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(Account::from).collect())
}

/// The accounts on `pages` (a part of the warm-up's whole-table read).
pub(crate) async fn load_pages(
    conn: &mut AsyncPgConnection,
    pages: Pages,
) -> QueryResult<Vec<Account>> {
    let rows: Vec<AccountRow> = accounts::table
        .filter(diesel::dsl::sql::<Bool>(&pages.predicate()))
        .select(AccountRow::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(Account::from).collect())
}

/// The account for `email` (already normalised), created when missing with
/// `declared_country` — which is therefore written exactly once, at
/// registration. Runs on the caller's connection so sign-in can create the
/// account and its first session in one transaction. `true` when created.
pub async fn find_or_create(
    conn: &mut AsyncPgConnection,
    email: &str,
    declared_country: Option<&str>,
) -> QueryResult<(Account, bool)> {
    let id = galaxy_core::new_id();
    let display_name = default_display_name(id);
    // One round trip for both outcomes: the insert (announced to the other
    // backends with the same statement; the payload of one key is the key)
    // or the existing row. The new id coming back means created.
    let found: Option<AccountRow> = galaxy_db::sql(
        "WITH created AS ( \
             INSERT INTO accounts \
                 (id, email, display_name, declared_country, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $5) \
             ON CONFLICT (email) DO NOTHING \
             RETURNING id, email, display_name, declared_country, status, created_at), \
         announced AS (SELECT pg_notify($6, id::text) FROM created) \
         SELECT c.* FROM created c, announced \
         UNION ALL \
         SELECT a.id, a.email, a.display_name, a.declared_country, a.status, a.created_at \
         FROM accounts a WHERE a.email = $2 AND NOT EXISTS (SELECT 1 FROM created)",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Text, _>(email)
    .bind::<diesel::sql_types::Text, _>(&display_name)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(declared_country)
    .bind::<diesel::sql_types::Timestamptz, _>(Utc::now())
    .bind::<diesel::sql_types::Text, _>(CHANNEL)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(row) = found {
        let created = row.id == id;
        return Ok((row.into(), created));
    }
    // The conflicting row was committed by another sign-in after this
    // statement's snapshot was taken: a new statement sees it.
    let row: AccountRow = accounts::table
        .filter(accounts::email.eq(email))
        .select(AccountRow::as_select())
        .get_result(conn)
        .await?;
    Ok((row.into(), false))
}

/// Announces a written account; call inside the write's transaction.
async fn announce_written(
    conn: &mut AsyncPgConnection,
    written: Option<AccountRow>,
) -> QueryResult<Option<Account>> {
    if let Some(row) = &written {
        announce(conn, CHANNEL, [row.id]).await?;
    }
    Ok(written.map(Account::from))
}

/// A neutral name until the player picks one: never derived from the email
/// address, which other players must not learn.
fn default_display_name(id: Uuid) -> String {
    let simple = id.simple().to_string();
    format!("Player {}", &simple[simple.len() - 6..])
}

/// Call inside a transaction (the announcement is sent on its commit).
pub(crate) async fn set_display_name(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    name: &str,
) -> QueryResult<Option<Account>> {
    let written = diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::status.ne(AccountStatus::Deleted.as_str())),
    )
    .set((
        accounts::display_name.eq(name),
        accounts::updated_at.eq(Utc::now()),
    ))
    .returning(AccountRow::as_returning())
    .get_result::<AccountRow>(conn)
    .await
    .optional()?;
    announce_written(conn, written).await
}

/// Call inside a transaction (the announcement is sent on its commit).
pub(crate) async fn set_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: AccountStatus,
) -> QueryResult<Option<Account>> {
    let now = Utc::now();
    let deleted_at = (status == AccountStatus::Deleted).then_some(now);
    // `deleted` is final: a write racing a delete (or a process whose cache
    // has not seen it) changes nothing.
    let written = diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::status.ne(AccountStatus::Deleted.as_str())),
    )
    .set((
        accounts::status.eq(status.as_str()),
        accounts::updated_at.eq(now),
        accounts::deleted_at.eq(deleted_at),
    ))
    .returning(AccountRow::as_returning())
    .get_result::<AccountRow>(conn)
    .await
    .optional()?;
    announce_written(conn, written).await
}
