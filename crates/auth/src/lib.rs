//! Email-code sign-in and user sessions (layer 2; uses user, mail and geo).
//!
//! A code request stores a challenge (code hashed) and enqueues the
//! login-code mail in the same transaction; a verify consumes it, creates the
//! account on first sign-in and opens a session. Sessions live in a
//! whole-table cache that resolves bearer tokens with no database round trip
//! ([`PgAuthService`] is the binary's `UserSessionResolver`); `last_seen_at`
//! is written in batches by a background flusher.

mod cache;
mod challenge;
mod coherence;
mod error;
mod ports;
mod retention;
mod routes;
pub mod schema;
mod service;
mod session;
mod settings;
mod token;
mod warm;

pub use error::AuthError;
pub use routes::{
    ChallengeCreated, CodeRequest, CodeVerify, OwnSession, SignedIn, configure, openapi,
};
pub use service::{AuthService, AuthSettings, PgAuthService, SignIn};
pub use session::SessionView;
pub use settings::VARIABLES;
pub use token::USER_TOKEN_PREFIX;
