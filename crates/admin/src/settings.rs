//! The admin module's settings (`BACKEND_ADMIN_*`): the service's tuning
//! and the bootstrap admin inserted at boot.

use galaxy_core::env::{ConfigError, Env, Reader, Secret, Variable};

use crate::service::AdminSettings;

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[
    Variable::unset(
        "BACKEND_ADMIN_BOOTSTRAP_USER",
        "idempotent insert of the first admin at boot",
    ),
    Variable::unset(
        "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
        "password of the bootstrap admin (only used when it is created)",
    ),
    Variable::new(
        "BACKEND_ADMIN_LOGIN_LIMIT",
        "10/15m",
        "failed admin logins per source IP (and half that per username) per window",
    ),
    Variable::new(
        "BACKEND_ADMIN_HASH_CONCURRENCY",
        "0",
        "argon2 password checks running at once (`0`: the number of cores); up to four times that many wait, the rest answer 503",
    ),
    Variable::new("BACKEND_ADMIN_SESSION_TTL", "12h", "admin session lifetime"),
];

/// The first admin, given by the operator; inserted at boot if missing.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: AdminSettings,
    /// Set when `BACKEND_ADMIN_BOOTSTRAP_USER` is.
    pub bootstrap: Option<Bootstrap>,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        let username = r.optional("BACKEND_ADMIN_BOOTSTRAP_USER");
        let password = r.secret("BACKEND_ADMIN_BOOTSTRAP_PASSWORD");
        let service = AdminSettings {
            login_limit: r.rate("BACKEND_ADMIN_LOGIN_LIMIT")?,
            hash_concurrency: match r.parse::<usize>("BACKEND_ADMIN_HASH_CONCURRENCY")? {
                0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                n => n,
            },
            session_ttl: r.duration("BACKEND_ADMIN_SESSION_TTL")?,
        };
        if username.is_some() && password.expose().chars().count() < 12 {
            return Err(ConfigError::new(
                "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
                "must be at least 12 characters when BACKEND_ADMIN_BOOTSTRAP_USER is set",
            ));
        }
        Ok(Self {
            service,
            bootstrap: username.map(|username| Bootstrap { username, password }),
        })
    }
}

#[cfg(test)]
mod tests {
    use galaxy_core::env::assert_each_names_its_variable;
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::from_env(&Env::default()).unwrap();
        assert!(s.bootstrap.is_none());
        assert!(s.service.hash_concurrency >= 1);
        assert_eq!(s.service.login_limit.count, 10);
        assert_eq!(s.service.login_limit.window, Duration::from_secs(900));
        assert_eq!(s.service.session_ttl, Duration::from_secs(12 * 3600));
        let env = Env::from_pairs([("BACKEND_ADMIN_HASH_CONCURRENCY", "3")]);
        assert_eq!(
            Settings::from_env(&env).unwrap().service.hash_concurrency,
            3
        );
    }

    #[test]
    fn the_bootstrap_admin_needs_a_long_password() {
        let short = Env::from_pairs([
            ("BACKEND_ADMIN_BOOTSTRAP_USER", "root"),
            ("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", "eleven-char"),
        ]);
        let err = Settings::from_env(&short).unwrap_err();
        assert_eq!(err.variable, "BACKEND_ADMIN_BOOTSTRAP_PASSWORD");
        assert!(!err.to_string().contains("eleven-char"), "{err}");
        let ok = Env::from_pairs([
            ("BACKEND_ADMIN_BOOTSTRAP_USER", "root"),
            ("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", "twelve-chars"),
        ]);
        let bootstrap = Settings::from_env(&ok).unwrap().bootstrap.unwrap();
        assert_eq!(bootstrap.username, "root");
        assert_eq!(bootstrap.password.expose(), "twelve-chars");
        // without a user the password is not used, so it is not checked
        let alone = Env::from_pairs([("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", "x")]);
        assert!(Settings::from_env(&alone).unwrap().bootstrap.is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_each_names_its_variable(
            Settings::from_env,
            &[],
            &[
                ("BACKEND_ADMIN_LOGIN_LIMIT", "10"),
                ("BACKEND_ADMIN_HASH_CONCURRENCY", "-1"),
                ("BACKEND_ADMIN_SESSION_TTL", "0s"),
            ],
        );
    }
}
