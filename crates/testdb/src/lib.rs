//! Test databases for every crate's tests.
//!
//! `TestDb::new()` gives a test its own freshly migrated database in one
//! line, cloned from a template migrated once, and drops it when the test
//! ends. The server is `GALAXY_TEST_DATABASE_URL` when set (a server the tests
//! may create databases on); otherwise a throwaway PostgreSQL started from the
//! local server binaries, one per test process, removed by a watchdog when the
//! process exits. Leftovers of crashed runs are swept on start.
//!
//! There is no skipping: when no PostgreSQL can be had, tests fail loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support")]

mod count;
mod server;
mod testdb;

pub use count::count;
pub use server::PrivateServer;
pub use testdb::TestDb;
