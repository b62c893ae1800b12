//! The runtime's caches follow their peers' changes (SYSTEM.md §12).
//!
//! Every record write is announced on [`db::RECORDS`] with its game, every
//! engine-version write on [`db::VERSIONS`]; a backend reads the records
//! (and the start requests) of the announced games again, or the versions
//! whole. Records carry their commit order (`updated_at`), so an older copy
//! never replaces a newer one ([`Runtime::cache`]). A record written outside
//! a transaction whose announcement was lost in a crash is announced again
//! by the leader's next reconcile pass, which touches every record.

use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{Array, Jsonb, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_db::announce::Coherent;
use uuid::Uuid;

use crate::db;
use crate::error::RuntimeError;
use crate::model::RuntimeRecord;
use crate::schema::runtime_records;
use crate::state::{Runtime, parse_requests, write};

impl Runtime {
    /// The runtime's caches as the change listener drives them.
    pub fn coherent_caches(&self) -> Vec<Arc<dyn Coherent>> {
        vec![
            Arc::new(Records(self.clone())),
            Arc::new(Versions(self.clone())),
        ]
    }

    async fn reload_records(&self, ids: &[Uuid]) -> Result<(), RuntimeError> {
        let mut conn = self.conn().await?;
        let records = records_of(&mut conn, ids).await?;
        let requests = start_requests_of(&mut conn, ids).await?;
        drop(conn);
        write(&self.inner.requests).extend(parse_requests(requests));
        for record in records {
            self.cache(record);
        }
        Ok(())
    }

    async fn reload_versions(&self) -> Result<(), RuntimeError> {
        let mut conn = self.conn().await?;
        let versions = db::load_versions(&mut conn).await?;
        *write(&self.inner.versions) = versions;
        Ok(())
    }
}

struct Records(Runtime);

#[async_trait::async_trait]
impl Coherent for Records {
    fn channel(&self) -> &'static str {
        db::RECORDS
    }

    async fn reload(&self, ids: &[Uuid]) -> Result<(), String> {
        self.0.reload_records(ids).await.map_err(|e| e.to_string())
    }

    async fn reload_all(&self) -> Result<(), String> {
        let refreshed = self.0.refresh_from_database().await;
        refreshed.map(drop).map_err(|e| e.to_string())
    }
}

struct Versions(Runtime);

#[async_trait::async_trait]
impl Coherent for Versions {
    fn channel(&self) -> &'static str {
        db::VERSIONS
    }

    async fn reload(&self, _: &[Uuid]) -> Result<(), String> {
        self.0.reload_versions().await.map_err(|e| e.to_string())
    }

    async fn reload_all(&self) -> Result<(), String> {
        self.0.reload_versions().await.map_err(|e| e.to_string())
    }
}

async fn records_of(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<RuntimeRecord>> {
    runtime_records::table
        .filter(runtime_records::game_id.eq_any(ids))
        .select(RuntimeRecord::as_select())
        .load(conn)
        .await
}

/// The start request each of these games was last started with.
async fn start_requests_of(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, serde_json::Value)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        game_id: Uuid,
        #[diesel(sql_type = Jsonb)]
        request: serde_json::Value,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT DISTINCT ON (game_id) game_id, details -> 'request' AS request \
         FROM runtime_operation_log \
         WHERE operation = 'start' AND details ? 'request' AND game_id = ANY($1) \
         ORDER BY game_id, started_at DESC, id DESC",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.game_id, r.request)).collect())
}
