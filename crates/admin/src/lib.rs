//! Administrators (layer 3; uses auth and user): the bootstrap admin,
//! argon2id passwords (bounded by a `HashGate`), admin sessions in a whole-table cache (the binary's
//! `AdminSessionResolver`), failed-login limits counted in PostgreSQL and reserved before the hash, and the admin HTTP surface
//! over admins and users (`/api/v1/admin/auth/*`, `/admins`, `/users`).

mod cache;
mod db;
mod error;
mod limiter;
mod password;
mod routes;
pub mod schema;
mod service;
mod settings;

pub use error::AdminError;
pub use limiter::HashGate;
pub use routes::{
    AdminLogin, AdminToken, AdminUsersQuery, NewAdmin, PasswordChange, UserDetail, configure,
    openapi,
};
pub use service::{ADMIN_TOKEN_PREFIX, AdminService, AdminSettings, AdminView, PgAdminService};
pub use settings::{Bootstrap, Settings, VARIABLES};
