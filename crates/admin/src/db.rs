//! Database functions over `admins` and `admin_sessions`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
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
    diesel::insert_into(admins::table)
        .values(row)
        .on_conflict(admins::username)
        .do_nothing()
        .returning(AdminRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub(crate) async fn insert_session(
    conn: &mut AsyncPgConnection,
    row: &SessionRow,
) -> QueryResult<()> {
    diesel::insert_into(admin_sessions::table)
        .values(row)
        .execute(conn)
        .await
        .map(drop)
}

pub(crate) async fn revoke_session(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(
        admin_sessions::table
            .filter(admin_sessions::id.eq(id))
            .filter(admin_sessions::revoked_at.is_null()),
    )
    .set(admin_sessions::revoked_at.eq(Utc::now()))
    .execute(conn)
    .await
    .map(drop)
}

/// New password; every other live session of the admin revoked. Returns the
/// updated admin and the revoked session ids.
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
    Ok((admin, revoked))
}
