//! The mechanics every PostgreSQL-backed queue in Galaxy shares (the mail
//! outbox, notification routes): exponential backoff with jitter and a
//! periodic worker loop that drains backlogs and stops cleanly.
//!
//! The claim itself (`SELECT … FOR UPDATE SKIP LOCKED`) stays in each
//! module's SQL, because each queue's table and state machine differ.

mod backoff;
mod worker;

pub use backoff::Backoff;
pub use worker::{BatchOutcome, run_periodic};
