//! Values of the notification tables' constrained columns, shared by the
//! writes and the reads.

pub const CHANNEL_PUSH: &str = "push";
pub const CHANNEL_EMAIL: &str = "email";

/// Route statuses (the column's CHECK constraint).
pub const STATUSES: &[&str] = &[
    "pending",
    "retrying",
    "delivered",
    "skipped",
    "dead_lettered",
];
