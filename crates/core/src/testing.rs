//! Session fakes for the route tests of modules that trust sessions another
//! module issues (feature `testing`). A neighbour's fake: auth and admin test
//! their own resolvers for real.

use std::net::IpAddr;

use uuid::Uuid;

use crate::{AdminPrincipal, AdminSessionResolver, UserPrincipal, UserSessionResolver};

/// The one admin token [`TestSessions`] accepts (admin `root`, nil ids).
pub const ADMIN_TOKEN: &str = "admin-token";

/// Resolves [`user_token`]s to their account (the session id is the account
/// id) and [`ADMIN_TOKEN`] to the admin `root`; every other token to nobody.
pub struct TestSessions;

/// The token [`TestSessions`] resolves to `account`.
#[must_use]
pub fn user_token(account: Uuid) -> String {
    format!("user-{account}")
}

impl UserSessionResolver for TestSessions {
    fn resolve_user(&self, token: &str, _source_ip: Option<IpAddr>) -> Option<UserPrincipal> {
        let id = token.strip_prefix("user-")?.parse().ok()?;
        Some(UserPrincipal {
            account_id: id,
            session_id: id,
        })
    }
}

impl AdminSessionResolver for TestSessions {
    fn resolve_admin(&self, token: &str) -> Option<AdminPrincipal> {
        (token == ADMIN_TOKEN).then(|| AdminPrincipal {
            admin_id: Uuid::nil(),
            session_id: Uuid::nil(),
            username: "root".to_owned(),
        })
    }
}
