//! Reading a whole table for a cache's warm-up: in runs of heap pages, by a
//! few readers at once, each on its own connection, which decode their rows
//! into cache entries while the caller files the previous ones. Decoding
//! and filling run side by side, and no full copy of the table's rows is
//! ever held.
//!
//! The runs are separate statements, so a row a peer changes meanwhile may
//! be read as it was; such a change is announced on the listener the module
//! opened before its warm-up and applied after it (SYSTEM.md §12), as one
//! snapshot's would be.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::QueryResult;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tokio::sync::mpsc;

use crate::{DbError, Pool};

/// Pages per statement (4 MiB of heap at the default block size): small
/// runs keep every reader busy to the end, large ones keep the statements few.
const PAGES_PER_RUN: u64 = 512;

/// Readers at once (fewer with a smaller pool); with the filling they keep
/// two cores busy.
const READERS: usize = 2;

/// The most entries the caller is told to reserve from the planner's
/// estimate (a wrong estimate then costs growth, never a huge allocation).
const MAX_RESERVED: u64 = 1 << 26;

/// A run of a table's heap pages, `to` open-ended for the last one (rows
/// written after the table's extent was read land there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pages {
    pub from: u64,
    pub to: Option<u64>,
}

impl Pages {
    /// The SQL condition for the rows on these pages: PostgreSQL reads just
    /// them (a TID range scan), so the runs of a whole-table read cost one
    /// pass in all.
    pub fn predicate(self) -> String {
        let from = self.from;
        match self.to {
            Some(to) => format!("ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid"),
            None => format!("ctid >= '({from},0)'::tid"),
        }
    }
}

/// How one reader turns a run of pages into what the cache files. Each
/// reader works on its own clone, so state in it (strings shared between
/// the entries it decodes) needs no lock.
pub trait PageRunReader: Clone + Send + 'static {
    type Rows: Send + 'static;

    fn read(
        &mut self,
        conn: &mut AsyncPgConnection,
        pages: Pages,
    ) -> impl Future<Output = QueryResult<Self::Rows>> + Send;
}

/// Reads every row of `table` through `reader`: `start` gets the planner's
/// estimate of the rows (capped) and gives what `fill` files each run into.
pub async fn read_table<R: PageRunReader, A>(
    pool: &Pool,
    table: &str,
    reader: R,
    start: impl FnOnce(usize) -> A,
    mut fill: impl FnMut(&mut A, R::Rows),
) -> Result<A, DbError> {
    let (pages, estimate) = {
        let mut conn = pool.get().await?;
        extent(&mut conn, table).await?
    };
    let next = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel(READERS * 2);
    // Never more readers than the pool has connections: one would wait for
    // another's, which it holds to the end.
    let readers: Vec<_> = (0..READERS.min(pool.status().max_size).max(1))
        .map(|_| {
            let run = read_runs(
                pool.clone(),
                Arc::clone(&next),
                pages,
                reader.clone(),
                tx.clone(),
            );
            tokio::spawn(run)
        })
        .collect();
    drop(tx);
    let mut filled = start(usize::try_from(estimate.min(MAX_RESERVED)).unwrap_or(0));
    let mut failed = None;
    while let Some(run) = rx.recv().await {
        match run {
            Ok(rows) => fill(&mut filled, rows),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // The other readers stop at their next run.
    drop(rx);
    for reader in readers {
        if let Err(e) = reader.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    failed.map_or(Ok(filled), Err)
}

/// A table's size now: its heap pages and the planner's estimate of its
/// rows (0 before its first analyze).
async fn extent(conn: &mut AsyncPgConnection, table: &str) -> QueryResult<(u64, u64)> {
    #[derive(diesel::QueryableByName)]
    struct Extent {
        #[diesel(sql_type = BigInt)]
        pages: i64,
        #[diesel(sql_type = BigInt)]
        estimate: i64,
    }
    let e: Extent = diesel::sql_query(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint AS pages, \
                greatest(c.reltuples, 0)::bigint AS estimate \
         FROM pg_class c WHERE c.oid = $1::regclass",
    )
    .bind::<Text, _>(table)
    .get_result(conn)
    .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok((count(e.pages), count(e.estimate)))
}

/// The next run nobody has claimed yet; the one reaching the table's end
/// is open-ended.
fn claim(next: &AtomicU64, pages: u64) -> Option<Pages> {
    let from = next.fetch_add(PAGES_PER_RUN, Ordering::Relaxed);
    if from > 0 && from >= pages {
        return None;
    }
    let to = from + PAGES_PER_RUN;
    Some(Pages {
        from,
        to: (to < pages).then_some(to),
    })
}

async fn read_runs<R: PageRunReader>(
    pool: Pool,
    next: Arc<AtomicU64>,
    pages: u64,
    mut reader: R,
    tx: mpsc::Sender<Result<R::Rows, DbError>>,
) {
    let read = async {
        let mut conn = pool.get().await?;
        while let Some(run) = claim(&next, pages) {
            let rows = reader.read(&mut conn, run).await?;
            if tx.send(Ok(rows)).await.is_err() {
                break;
            }
        }
        Ok::<_, DbError>(())
    }
    .await;
    if let Err(e) = read {
        // Nobody listens any more when another reader failed first.
        tx.send(Err(e)).await.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(pages: u64) -> Vec<Pages> {
        let next = AtomicU64::new(0);
        std::iter::from_fn(|| claim(&next, pages)).collect()
    }

    #[test]
    fn runs_cover_the_table_and_the_last_is_open_ended() {
        let p = PAGES_PER_RUN;
        let whole = [Pages { from: 0, to: None }];
        assert_eq!(runs(0), whole);
        assert_eq!(runs(1), whole);
        assert_eq!(runs(p), whole);
        let two = [
            Pages {
                from: 0,
                to: Some(p),
            },
            Pages { from: p, to: None },
        ];
        assert_eq!(runs(p + 1), two);
    }

    #[test]
    fn a_run_is_a_tid_range() {
        let run = Pages {
            from: 512,
            to: Some(1024),
        };
        assert_eq!(
            run.predicate(),
            "ctid >= '(512,0)'::tid AND ctid < '(1024,0)'::tid"
        );
        let last = Pages {
            from: 1024,
            to: None,
        };
        assert_eq!(last.predicate(), "ctid >= '(1024,0)'::tid");
    }
}
