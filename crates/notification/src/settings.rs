//! `BACKEND_NOTIFICATION_*`: the route worker and the admin channel's
//! recipient.

use galaxy_core::env::{ConfigError, Env, Reader, Variable, looks_like_email};

use crate::model::NotificationSettings;

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[
    Variable::new(
        "BACKEND_NOTIFICATION_WORKER_INTERVAL",
        "5s",
        "route scan period",
    ),
    Variable::new(
        "BACKEND_NOTIFICATION_MAX_ATTEMPTS",
        "8",
        "attempts before a route is dead-lettered",
    ),
    Variable::unset(
        "BACKEND_NOTIFICATION_ADMIN_EMAIL",
        "recipient of admin-channel kinds; empty → routes `skipped`",
    ),
];

impl NotificationSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        let worker_interval = r.duration("BACKEND_NOTIFICATION_WORKER_INTERVAL")?;
        let max_attempts = r.count("BACKEND_NOTIFICATION_MAX_ATTEMPTS")?;
        let admin_email = r.optional("BACKEND_NOTIFICATION_ADMIN_EMAIL");
        if let Some(email) = &admin_email
            && !looks_like_email(email)
        {
            return Err(ConfigError::new(
                "BACKEND_NOTIFICATION_ADMIN_EMAIL",
                "must be an email address",
            ));
        }
        Ok(Self::new(worker_interval, max_attempts, admin_email))
    }
}

#[cfg(test)]
mod tests {
    use galaxy_core::env::assert_each_names_its_variable;
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let s = NotificationSettings::from_env(&Env::default()).unwrap();
        assert_eq!(s.worker_interval, Duration::from_secs(5));
        assert_eq!(s.max_attempts, 8);
        assert_eq!(s.admin_email, None);
    }

    #[test]
    fn the_admin_email_must_be_an_address() {
        let env = Env::from_pairs([("BACKEND_NOTIFICATION_ADMIN_EMAIL", "ops@example.com")]);
        let s = NotificationSettings::from_env(&env).unwrap();
        assert_eq!(s.admin_email.as_deref(), Some("ops@example.com"));
        assert_each_names_its_variable(
            NotificationSettings::from_env,
            &[],
            &[
                ("BACKEND_NOTIFICATION_ADMIN_EMAIL", "not-an-email"),
                ("BACKEND_NOTIFICATION_ADMIN_EMAIL", " "),
                ("BACKEND_NOTIFICATION_MAX_ATTEMPTS", "0"),
                ("BACKEND_NOTIFICATION_WORKER_INTERVAL", "0s"),
            ],
        );
    }
}
