//! The session cache's warm-up: every live session, read in runs of heap
//! pages by a few readers at once ([`galaxy_db::page_runs`]), each sharing
//! one string per user agent among the entries it decodes.

use std::sync::Arc;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use galaxy_db::Pool;
use galaxy_db::page_runs::{self, PageRunReader, Pages};

use crate::cache::Sessions;
use crate::error::AuthError;
use crate::session::{self, Agents, Entry};

/// Decodes runs of live sessions into (token digest, entry).
#[derive(Clone, Default)]
struct SessionRuns {
    agents: Agents,
}

impl PageRunReader for SessionRuns {
    type Rows = Vec<([u8; 32], Entry)>;

    async fn read(
        &mut self,
        conn: &mut AsyncPgConnection,
        pages: Pages,
    ) -> QueryResult<Self::Rows> {
        session::load_live_pages(conn, pages, &mut self.agents).await
    }
}

/// Every live session, as the cache will hold them. The planner's
/// estimate counts revoked and expired rows too (kept until their
/// retention ends): a little room to spare, never a grown table.
pub(crate) async fn load(pool: &Pool) -> Result<Sessions, AuthError> {
    let sessions = page_runs::read_table(
        pool,
        "auth_sessions",
        SessionRuns::default(),
        Sessions::with_capacity,
        |sessions, rows| {
            for (digest, entry) in rows {
                sessions.insert(digest, Arc::new(entry));
            }
        },
    )
    .await?;
    Ok(sessions)
}
