//! The account cache's warm-up: the whole `accounts` table read in runs of
//! heap pages by a few readers at once ([`galaxy_db::page_runs`]), each
//! sharing one string per declared country among the entries it decodes.

use std::collections::HashSet;
use std::sync::Arc;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use galaxy_db::Pool;
use galaxy_db::page_runs::{self, PageRunReader, Pages};

use crate::cache::{Accounts, Entry};
use crate::db;
use crate::error::UserError;

/// Decodes runs of accounts into cache entries.
#[derive(Clone, Default)]
struct AccountRuns {
    countries: HashSet<Arc<str>>,
}

impl PageRunReader for AccountRuns {
    type Rows = Vec<Entry>;

    async fn read(
        &mut self,
        conn: &mut AsyncPgConnection,
        pages: Pages,
    ) -> QueryResult<Vec<Entry>> {
        let accounts = db::load_pages(conn, pages).await?;
        Ok(accounts
            .into_iter()
            .map(|a| Entry::new(a, Some(&mut self.countries)))
            .collect())
    }
}

/// Every account, as the cache will hold them.
pub(crate) async fn load(pool: &Pool) -> Result<Accounts, UserError> {
    let accounts = page_runs::read_table(
        pool,
        "accounts",
        AccountRuns::default(),
        Accounts::with_capacity,
        |accounts, entries| entries.into_iter().for_each(|e| accounts.put(e)),
    )
    .await?;
    Ok(accounts)
}
