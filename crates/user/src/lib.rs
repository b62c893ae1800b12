//! Player accounts (layer 2): the `accounts` table, a whole-table cache that
//! answers every request-path read, profile routes (`/api/v1/user/me`) and
//! the [`UserEvents`] hook other modules subscribe to (deletion, block).
//!
//! Accounts are created by the auth module at the first successful sign-in,
//! inside its transaction, through [`find_or_create`]; it then hands the
//! committed account to [`UserService::account_committed`].

mod cache;
mod coherence;
mod db;
mod error;
mod events;
mod model;
mod reactions;
mod routes;
pub mod schema;
mod service;
mod validate;
mod warm;

pub use db::find_or_create;
pub use error::UserError;
pub use events::UserEvents;
pub use model::{Account, AccountFilter, AccountStatus};
pub use routes::{DisplayNameUpdate, configure, openapi};
pub use service::{PgUserService, UserService};
pub use validate::{EMAIL_MAX, EMAIL_PATTERN, normalize_email, validate_display_name};
