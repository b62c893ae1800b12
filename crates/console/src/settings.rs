//! `BACKEND_CONSOLE_*`: the console's cookie policy.

use galaxy_core::env::{ConfigError, Env, Reader, Variable};

use crate::session::CookiePolicy;

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[Variable::new(
    "BACKEND_CONSOLE_INSECURE_COOKIE",
    "false",
    "`true`: the operator console's session cookie is sent without `Secure` (plain-HTTP local stack only)",
)];

impl CookiePolicy {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        let insecure = r.choice("BACKEND_CONSOLE_INSECURE_COOKIE", &["true", "false"])? == "true";
        Ok(Self { secure: !insecure })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_unless_asked() {
        assert!(CookiePolicy::from_env(&Env::default()).unwrap().secure);
        let env = Env::from_pairs([("BACKEND_CONSOLE_INSECURE_COOKIE", "TRUE")]);
        assert!(!CookiePolicy::from_env(&env).unwrap().secure);
        let env = Env::from_pairs([("BACKEND_CONSOLE_INSECURE_COOKIE", "yes")]);
        let err = CookiePolicy::from_env(&env).unwrap_err();
        assert_eq!(err.variable, "BACKEND_CONSOLE_INSECURE_COOKIE");
    }
}
