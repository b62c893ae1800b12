//! Database functions over `admins` and `admin_sessions`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use galaxy_db::announce::announce;
use uuid::Uuid;

use crate::schema::{admin_sessions, admins};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admins)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub(crate) struct AdminRow {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_sessions)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub(crate) struct SessionRow {
    pub id: Uuid,
    pub admin_id: Uuid,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The channel on which every write below announces the admin it touched
/// (its row or one of its sessions), in the write's transaction. The tables
/// are small: a peer reloads both whole.
pub(crate) const CHANNEL: &str = "galaxy_admins";

pub(crate) async fn load_admins(conn: &mut AsyncPgConnection) -> QueryResult<Vec<AdminRow>> {
    admins::table.select(AdminRow::as_select()).load(conn).await
}

pub(crate) async fn load_live_sessions(
    conn: &mut AsyncPgConnection,
) -> QueryResult<Vec<SessionRow>> {
    admin_sessions::table
        .filter(admin_sessions::revoked_at.is_null())
        .filter(admin_sessions::expires_at.gt(diesel::dsl::now))
        .select(SessionRow::as_select())
        .load(conn)
        .await
}

pub(crate) async fn username_exists(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        admins::table.filter(admins::username.eq(username)),
    ))
    .get_result(conn)
    .await
}

/// Inserts unless the username exists; `None` when it did (nothing changed,
/// in particular not the existing admin's password).
pub(crate) async fn insert_admin(
    conn: &mut AsyncPgConnection,
    row: &AdminRow,
) -> QueryResult<Option<AdminRow>> {
    conn.transaction(async |c| {
        let inserted = diesel::insert_into(admins::table)
            .values(row)
            .on_conflict(admins::username)
            .do_nothing()
            .returning(AdminRow::as_returning())
            .get_result(c)
            .await
            .optional()?;
        announce(c, CHANNEL, inserted.iter().map(|a| a.id)).await?;
        Ok(inserted)
    })
    .await
}

pub(crate) async fn insert_session(
    conn: &mut AsyncPgConnection,
    row: &SessionRow,
) -> QueryResult<()> {
    conn.transaction(async |c| {
        diesel::insert_into(admin_sessions::table)
            .values(row)
            .execute(c)
            .await?;
        announce(c, CHANNEL, [row.admin_id]).await
    })
    .await
}

pub(crate) async fn revoke_session(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    conn.transaction(async |c| {
        let owner: Option<Uuid> = diesel::update(
            admin_sessions::table
                .filter(admin_sessions::id.eq(id))
                .filter(admin_sessions::revoked_at.is_null()),
        )
        .set(admin_sessions::revoked_at.eq(Utc::now()))
        .returning(admin_sessions::admin_id)
        .get_result(c)
        .await
        .optional()?;
        announce(c, CHANNEL, owner).await
    })
    .await
}

/// New password; every other live session of the admin revoked. Returns the
/// updated admin and the revoked session ids. Call inside a transaction.
pub(crate) async fn rotate_password(
    conn: &mut AsyncPgConnection,
    admin_id: Uuid,
    keep_session: Uuid,
    password_hash: &str,
) -> QueryResult<(AdminRow, Vec<Uuid>)> {
    let now = Utc::now();
    let admin = diesel::update(admins::table.find(admin_id))
        .set((
            admins::password_hash.eq(password_hash),
            admins::password_changed_at.eq(now),
        ))
        .returning(AdminRow::as_returning())
        .get_result(conn)
        .await?;
    let revoked = diesel::update(
        admin_sessions::table
            .filter(admin_sessions::admin_id.eq(admin_id))
            .filter(admin_sessions::id.ne(keep_session))
            .filter(admin_sessions::revoked_at.is_null()),
    )
    .set(admin_sessions::revoked_at.eq(now))
    .returning(admin_sessions::id)
    .get_results(conn)
    .await?;
    announce(conn, CHANNEL, [admin_id]).await?;
    Ok((admin, revoked))
}
