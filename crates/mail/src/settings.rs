use std::fmt;
use std::time::Duration;

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
    /// Outcomes are written after at most this many sends, bounding the
    /// mails that a crash can make go out twice.
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
