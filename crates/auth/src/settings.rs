//! `BACKEND_AUTH_*`: code and session lifetimes, the code-request limits
//! and how long expired rows are kept.

use galaxy_core::env::{ConfigError, Env, Reader, Variable};

use crate::service::AuthSettings;

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[
    Variable::new("BACKEND_AUTH_SESSION_TTL", "720h", "user session lifetime"),
    Variable::new("BACKEND_AUTH_CODE_TTL", "10m", "email code lifetime"),
    Variable::new(
        "BACKEND_AUTH_CHALLENGE_RETENTION",
        "24h",
        "how long an expired sign-in challenge is kept before it is deleted (never less than the code-request limit windows)",
    ),
    Variable::new(
        "BACKEND_AUTH_SESSION_RETENTION",
        "720h",
        "how long an expired or revoked user session is kept before it is deleted",
    ),
    Variable::new(
        "BACKEND_AUTH_EMAIL_CODE_LIMIT",
        "5/15m",
        "code requests per email address per window",
    ),
    Variable::new(
        "BACKEND_AUTH_IP_CODE_LIMIT",
        "20/15m",
        "code requests per source IP per window",
    ),
];

impl AuthSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        Ok(Self {
            session_ttl: r.duration("BACKEND_AUTH_SESSION_TTL")?,
            code_ttl: r.duration("BACKEND_AUTH_CODE_TTL")?,
            email_code_limit: r.rate("BACKEND_AUTH_EMAIL_CODE_LIMIT")?,
            ip_code_limit: r.rate("BACKEND_AUTH_IP_CODE_LIMIT")?,
            challenge_retention: r.duration("BACKEND_AUTH_CHALLENGE_RETENTION")?,
            session_retention: r.duration("BACKEND_AUTH_SESSION_RETENTION")?,
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
        let s = AuthSettings::from_env(&Env::default()).unwrap();
        assert_eq!(s.session_ttl, Duration::from_secs(720 * 3600));
        assert_eq!(s.code_ttl, Duration::from_secs(600));
        assert_eq!((s.email_code_limit.count, s.ip_code_limit.count), (5, 20));
        assert_eq!(s.email_code_limit.window, Duration::from_secs(900));
        assert_eq!(s.challenge_retention, Duration::from_secs(24 * 3600));
        assert_eq!(s.session_retention, Duration::from_secs(720 * 3600));
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_each_names_its_variable(
            AuthSettings::from_env,
            &[],
            &[
                ("BACKEND_AUTH_EMAIL_CODE_LIMIT", "5"),
                ("BACKEND_AUTH_IP_CODE_LIMIT", "0/1m"),
                ("BACKEND_AUTH_CODE_TTL", "0s"),
                ("BACKEND_AUTH_SESSION_RETENTION", "forever"),
            ],
        );
    }
}
