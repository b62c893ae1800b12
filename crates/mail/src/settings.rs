//! The mail module's settings: the SMTP relay (`BACKEND_SMTP_*`) and the
//! delivery worker (`BACKEND_MAIL_*`), read and checked together because
//! the worker's lease is bounded by the relay's timeout.

use std::fmt;
use std::time::Duration;

use galaxy_core::env::{ConfigError, Env, Reader, Variable, looks_like_email};

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[
    Variable::required("BACKEND_SMTP_HOST", "SMTP relay host"),
    Variable::new("BACKEND_SMTP_PORT", "587", "SMTP relay port"),
    Variable::unset(
        "BACKEND_SMTP_USERNAME",
        "SMTP AUTH user (AUTH only when set)",
    ),
    Variable::unset("BACKEND_SMTP_PASSWORD", "SMTP AUTH password"),
    Variable::new(
        "BACKEND_SMTP_TLS_MODE",
        "starttls",
        "`starttls`, `tls` (implicit TLS), `none` (plaintext; local development only, warned at start)",
    ),
    Variable::new(
        "BACKEND_SMTP_TIMEOUT",
        "30s",
        "bound on connecting and on each SMTP step; `BACKEND_MAIL_CLAIM_LEASE` must be at least twice it",
    ),
    Variable::required("BACKEND_SMTP_FROM", "envelope and header From"),
    Variable::new("BACKEND_MAIL_WORKER_INTERVAL", "2s", "outbox scan period"),
    Variable::new(
        "BACKEND_MAIL_MAX_ATTEMPTS",
        "8",
        "attempts per cycle before dead-letter",
    ),
    Variable::new(
        "BACKEND_MAIL_RETRY_BASE",
        "10s",
        "exponential backoff lower bound (with jitter)",
    ),
    Variable::new(
        "BACKEND_MAIL_RETRY_MAX",
        "30m",
        "exponential backoff upper bound",
    ),
    Variable::new(
        "BACKEND_MAIL_CLAIM_LEASE",
        "5m",
        "how long a claimed delivery stays invisible to other workers; a row claimed by a process that died is due again after it",
    ),
    Variable::new(
        "BACKEND_MAIL_SMTP_CONNECTIONS",
        "1",
        "SMTP sessions one worker batch is sent over at once (1 to 32), so a backlog after a relay outage drains that many times faster",
    ),
];

/// How the SMTP session is secured (`BACKEND_SMTP_TLS_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext greeting, then `STARTTLS` (required: a server that does not
    /// offer it is an error, never a silent downgrade).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// Plaintext; local development only.
    None,
}

/// The SMTP relay.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// AUTH is used only when a username is set.
    pub username: Option<String>,
    pub password: String,
    pub tls: TlsMode,
    /// Envelope and header From: `addr@domain` or `Name <addr@domain>`.
    pub from: String,
    /// Bound on connecting and on each SMTP command.
    pub timeout: Duration,
    /// Extra trusted root certificates (DER) besides the platform's: a
    /// private relay CA, or a test server's self-signed certificate.
    pub extra_roots: Vec<Vec<u8>>,
}

impl fmt::Debug for SmtpSettings {
    // Hand-written so the password can never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("extra_roots", &self.extra_roots.len())
            .finish_non_exhaustive()
    }
}

impl SmtpSettings {
    /// A relay at `host:port` with the defaults of SYSTEM.md §3.
    pub fn new(host: impl Into<String>, port: u16, tls: TlsMode, from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            username: None,
            password: String::new(),
            tls,
            from: from.into(),
            timeout: Duration::from_secs(30),
            extra_roots: Vec::new(),
        }
    }
}

/// The most SMTP sessions one worker batch opens at once.
pub const MAX_SMTP_CONNECTIONS: usize = 32;

/// The delivery worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `BACKEND_MAIL_WORKER_INTERVAL`.
    pub interval: Duration,
    /// `BACKEND_MAIL_MAX_ATTEMPTS`: attempts per cycle before dead-letter.
    pub max_attempts: u32,
    /// `BACKEND_MAIL_RETRY_BASE` / `_MAX`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Rows claimed per batch (shared out over `connections` sessions).
    pub batch_size: usize,
    /// SMTP sessions a batch is sent over at once
    /// (`BACKEND_MAIL_SMTP_CONNECTIONS`, 1..=[`MAX_SMTP_CONNECTIONS`]): each
    /// session takes the batch's next untried row until none is left, so a
    /// backlog after a relay outage drains that many times faster.
    pub connections: usize,
    /// How long a claimed row stays invisible to other workers. If the
    /// claiming process dies, the row is due again when the lease ends
    /// (`BACKEND_MAIL_CLAIM_LEASE`).
    pub lease: Duration,
    /// The outcome writer's window: it gathers up to this many outcomes
    /// (or 3 ms of them) per statement. What a crash can make go out twice
    /// is what is queued or being written, at most one batch (or this many
    /// per session, if more), plus two per session (`store.rs`).
    pub record_every: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            max_attempts: 8,
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(30 * 60),
            batch_size: 100,
            connections: 1,
            lease: Duration::from_secs(5 * 60),
            record_every: 25,
        }
    }
}

/// Everything the mail module is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub smtp: SmtpSettings,
    pub worker: WorkerSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        let smtp = smtp_from_env(&r)?;
        let worker = WorkerSettings {
            interval: r.duration("BACKEND_MAIL_WORKER_INTERVAL")?,
            max_attempts: r.count("BACKEND_MAIL_MAX_ATTEMPTS")?,
            retry_base: r.duration("BACKEND_MAIL_RETRY_BASE")?,
            retry_max: r.duration("BACKEND_MAIL_RETRY_MAX")?,
            lease: r.duration("BACKEND_MAIL_CLAIM_LEASE")?,
            connections: r.count_up_to("BACKEND_MAIL_SMTP_CONNECTIONS", MAX_SMTP_CONNECTIONS)?,
            ..WorkerSettings::default()
        };
        // A claimed row must stay leased while its try can still be running:
        // connect and each SMTP step are bounded by the timeout.
        if worker.lease < smtp.timeout * 2 {
            return Err(ConfigError::new(
                "BACKEND_MAIL_CLAIM_LEASE",
                format!(
                    "must be at least twice BACKEND_SMTP_TIMEOUT ({}s)",
                    smtp.timeout.as_secs_f64()
                ),
            ));
        }
        if worker.retry_max < worker.retry_base {
            return Err(ConfigError::new(
                "BACKEND_MAIL_RETRY_MAX",
                "must not be shorter than BACKEND_MAIL_RETRY_BASE",
            ));
        }
        Ok(Self { smtp, worker })
    }
}

fn smtp_from_env(r: &Reader<'_>) -> Result<SmtpSettings, ConfigError> {
    let host = r.required("BACKEND_SMTP_HOST")?;
    let port = r.count("BACKEND_SMTP_PORT")?;
    let username = r.optional("BACKEND_SMTP_USERNAME");
    let password = r.secret("BACKEND_SMTP_PASSWORD");
    let tls = r.pick(
        "BACKEND_SMTP_TLS_MODE",
        &[
            ("starttls", TlsMode::StartTls),
            ("tls", TlsMode::Tls),
            ("none", TlsMode::None),
        ],
    )?;
    let from = r.required("BACKEND_SMTP_FROM")?;
    let timeout = r.duration("BACKEND_SMTP_TIMEOUT")?;
    // `Name <addr@domain>` is checked by the mailer when it is built.
    if !looks_like_email(&from) && !from.contains('<') {
        return Err(ConfigError::new(
            "BACKEND_SMTP_FROM",
            "must be an email address",
        ));
    }
    if username.is_some() && password.is_empty() {
        return Err(ConfigError::new(
            "BACKEND_SMTP_PASSWORD",
            "required when BACKEND_SMTP_USERNAME is set",
        ));
    }
    let mut smtp = SmtpSettings::new(host, port, tls, from);
    smtp.username = username;
    smtp.password = password.expose().to_owned();
    smtp.timeout = timeout;
    Ok(smtp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use galaxy_core::env::assert_each_names_its_variable;

    const BASE: &[(&str, &str)] = &[
        ("BACKEND_SMTP_HOST", "localhost"),
        ("BACKEND_SMTP_FROM", "galaxy@example.com"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Settings, ConfigError> {
        let mut vars = BASE.to_vec();
        vars.extend_from_slice(extra);
        Settings::from_env(&Env::from_pairs(vars))
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = with(&[]).unwrap();
        assert_eq!(s.smtp.port, 587);
        assert_eq!(s.smtp.tls, TlsMode::StartTls);
        assert_eq!(s.smtp.timeout, Duration::from_secs(30));
        assert_eq!(s.smtp.username, None);
        assert_eq!(s.worker.interval, Duration::from_secs(2));
        assert_eq!(s.worker.max_attempts, 8);
        assert_eq!(s.worker.retry_base, Duration::from_secs(10));
        assert_eq!(s.worker.retry_max, Duration::from_secs(1800));
        assert_eq!(s.worker.lease, Duration::from_secs(300));
        let built_in = WorkerSettings::default();
        assert_eq!(
            (s.worker.batch_size, s.worker.record_every),
            (built_in.batch_size, built_in.record_every)
        );
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        assert_each_names_its_variable(
            Settings::from_env,
            BASE,
            &[
                ("BACKEND_SMTP_PORT", "70000"),
                ("BACKEND_SMTP_PORT", "0"),
                ("BACKEND_SMTP_TLS_MODE", "ssl"),
                ("BACKEND_SMTP_FROM", "nobody"),
                ("BACKEND_MAIL_WORKER_INTERVAL", "0s"),
                ("BACKEND_MAIL_MAX_ATTEMPTS", "0"),
                ("BACKEND_MAIL_RETRY_MAX", "1s"),
            ],
        );
        assert!(with(&[("BACKEND_SMTP_FROM", "Galaxy <galaxy@example.com>")]).is_ok());
        assert_eq!(
            with(&[("BACKEND_SMTP_TLS_MODE", "TLS")]).unwrap().smtp.tls,
            TlsMode::Tls
        );
    }

    #[test]
    fn a_username_needs_a_password() {
        let err = with(&[("BACKEND_SMTP_USERNAME", "relay")]).unwrap_err();
        assert_eq!(err.variable, "BACKEND_SMTP_PASSWORD");
        let s = with(&[
            ("BACKEND_SMTP_USERNAME", "relay"),
            ("BACKEND_SMTP_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert_eq!(s.smtp.username.as_deref(), Some("relay"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn smtp_timeout_is_a_setting_and_bounds_the_claim_lease() {
        // Default SMTP timeout 30s: a lease below 60s is refused.
        let err = with(&[("BACKEND_MAIL_CLAIM_LEASE", "50s")]).unwrap_err();
        assert_eq!(err.variable, "BACKEND_MAIL_CLAIM_LEASE", "{err}");
        assert_eq!(
            err.problem,
            "must be at least twice BACKEND_SMTP_TIMEOUT (30s)"
        );
        assert!(with(&[("BACKEND_MAIL_CLAIM_LEASE", "60s")]).is_ok());
        let err = with(&[("BACKEND_SMTP_TIMEOUT", "abc")]).unwrap_err();
        assert_eq!(err.variable, "BACKEND_SMTP_TIMEOUT");
        assert!(
            with(&[
                ("BACKEND_SMTP_TIMEOUT", "1s"),
                ("BACKEND_MAIL_CLAIM_LEASE", "3s")
            ])
            .is_ok()
        );
    }

    #[test]
    fn smtp_connections_default_to_one_and_are_bounded() {
        assert_eq!(with(&[]).unwrap().worker.connections, 1);
        let s = with(&[("BACKEND_MAIL_SMTP_CONNECTIONS", "32")]).unwrap();
        assert_eq!(s.worker.connections, 32);
        for bad in ["0", "33", "-1", "four"] {
            let err = with(&[("BACKEND_MAIL_SMTP_CONNECTIONS", bad)]).unwrap_err();
            assert_eq!(
                err.variable, "BACKEND_MAIL_SMTP_CONNECTIONS",
                "{bad}: {err}"
            );
        }
        let err = with(&[("BACKEND_MAIL_SMTP_CONNECTIONS", "33")]).unwrap_err();
        assert_eq!(err.problem, "must be at most 32");
    }
}
