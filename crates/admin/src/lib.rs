//! Administrators (layer 3; uses auth and user): the bootstrap admin,
//! argon2id passwords, admin sessions in a whole-table cache (the binary's
//! `AdminSessionResolver`), failed-login limits, and the admin HTTP surface
//! over admins and users (`/api/v1/admin/auth/*`, `/admins`, `/users`).

mod cache;
mod db;
mod error;
mod limiter;
mod password;
mod routes;
pub mod schema;
mod service;

pub use error::AdminError;
pub use limiter::FailureLimiter;
pub use routes::{
    AdminLogin, AdminToken, AdminUsersQuery, NewAdmin, PasswordChange, UserDetail, configure,
    openapi,
};
pub use service::{ADMIN_TOKEN_PREFIX, AdminService, AdminSettings, AdminView, PgAdminService};
