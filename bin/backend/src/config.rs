//! The backend's configuration: every variable of SYSTEM.md §3, parsed once
//! at start into one struct per concern. `VARIABLES` is the single list of
//! names, defaults and meanings: the README table is checked against it and
//! unknown `BACKEND_*` variables are warned about with it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use galaxy_core::env::{ConfigError, Env, RateLimit, Secret};
use galaxy_db::DatabaseUrl;

/// (name, default, meaning). A default of `(required)` means no default.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "BACKEND_HTTP_LISTEN_ADDR",
        "0.0.0.0:8080",
        "public + admin HTTP API, probes",
    ),
    (
        "BACKEND_GRPC_LISTEN_ADDR",
        "0.0.0.0:9090",
        "gRPC push listener (internal)",
    ),
    (
        "BACKEND_PUSH_TOKEN",
        "(required)",
        "bearer secret the gateway presents on the gRPC listener; two comma-separated while rotating",
    ),
    (
        "BACKEND_POSTGRES_DSN",
        "(required)",
        "`postgres://…?search_path=backend`; `search_path` is applied to every pooled connection",
    ),
    ("BACKEND_POSTGRES_MAX_CONNECTIONS", "16", "pool size"),
    (
        "BACKEND_POSTGRES_STATEMENT_TIMEOUT",
        "30s",
        "statement timeout set on every connection",
    ),
    ("BACKEND_SMTP_HOST", "(required)", "SMTP relay host"),
    ("BACKEND_SMTP_PORT", "587", "SMTP relay port"),
    (
        "BACKEND_SMTP_USERNAME",
        "",
        "SMTP AUTH user (AUTH only when set)",
    ),
    ("BACKEND_SMTP_PASSWORD", "", "SMTP AUTH password"),
    (
        "BACKEND_SMTP_TLS_MODE",
        "starttls",
        "`starttls`, `tls` (implicit TLS), `none` (plaintext; local development only, warned at start)",
    ),
    (
        "BACKEND_SMTP_TIMEOUT",
        "30s",
        "bound on connecting and on each SMTP step; `BACKEND_MAIL_CLAIM_LEASE` must be at least twice it",
    ),
    (
        "BACKEND_SMTP_FROM",
        "(required)",
        "envelope and header From",
    ),
    (
        "BACKEND_GEOIP_DB_PATH",
        "(required)",
        "GeoLite2-Country (or compatible) `.mmdb`",
    ),
    (
        "BACKEND_DOCKER_HOST",
        "unix:///var/run/docker.sock",
        "Docker daemon",
    ),
    (
        "BACKEND_DOCKER_NETWORK",
        "galaxy-engines",
        "user-defined bridge for engine containers; created at boot if missing",
    ),
    (
        "BACKEND_ADMIN_BOOTSTRAP_USER",
        "",
        "idempotent insert of the first admin at boot",
    ),
    (
        "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
        "",
        "password of the bootstrap admin (only used when it is created)",
    ),
    ("BACKEND_AUTH_SESSION_TTL", "720h", "user session lifetime"),
    ("BACKEND_AUTH_CODE_TTL", "10m", "email code lifetime"),
    (
        "BACKEND_AUTH_CHALLENGE_RETENTION",
        "24h",
        "how long an expired sign-in challenge is kept before it is deleted (never less than the code-request limit windows)",
    ),
    (
        "BACKEND_AUTH_SESSION_RETENTION",
        "720h",
        "how long an expired or revoked user session is kept before it is deleted",
    ),
    (
        "BACKEND_AUTH_EMAIL_CODE_LIMIT",
        "5/15m",
        "code requests per email address per window",
    ),
    (
        "BACKEND_AUTH_IP_CODE_LIMIT",
        "20/15m",
        "code requests per source IP per window",
    ),
    (
        "BACKEND_ADMIN_LOGIN_LIMIT",
        "10/15m",
        "failed admin logins per source IP (and half that per username) per window",
    ),
    (
        "BACKEND_ADMIN_HASH_CONCURRENCY",
        "0",
        "argon2 password checks running at once (`0`: the number of cores); up to four times that many wait, the rest answer 503",
    ),
    ("BACKEND_ADMIN_SESSION_TTL", "12h", "admin session lifetime"),
    (
        "BACKEND_CONSOLE_INSECURE_COOKIE",
        "false",
        "`true`: the operator console's session cookie is sent without `Secure` (plain-HTTP local stack only)",
    ),
    ("BACKEND_MAIL_WORKER_INTERVAL", "2s", "outbox scan period"),
    (
        "BACKEND_MAIL_MAX_ATTEMPTS",
        "8",
        "attempts per cycle before dead-letter",
    ),
    (
        "BACKEND_MAIL_RETRY_BASE",
        "10s",
        "exponential backoff lower bound (with jitter)",
    ),
    (
        "BACKEND_MAIL_RETRY_MAX",
        "30m",
        "exponential backoff upper bound",
    ),
    (
        "BACKEND_MAIL_CLAIM_LEASE",
        "5m",
        "how long a claimed delivery stays invisible to other workers; a row claimed by a process that died is due again after it",
    ),
    (
        "BACKEND_MAIL_SMTP_CONNECTIONS",
        "1",
        "SMTP sessions one worker batch is sent over at once (1 to 32), so a backlog after a relay outage drains that many times faster",
    ),
    (
        "BACKEND_NOTIFICATION_WORKER_INTERVAL",
        "5s",
        "route scan period",
    ),
    (
        "BACKEND_NOTIFICATION_MAX_ATTEMPTS",
        "8",
        "attempts before a route is dead-lettered",
    ),
    (
        "BACKEND_NOTIFICATION_ADMIN_EMAIL",
        "",
        "recipient of admin-channel kinds; empty → routes `skipped`",
    ),
    (
        "BACKEND_RUNTIME_RECONCILE_INTERVAL",
        "60s",
        "reconciler period",
    ),
    (
        "BACKEND_RUNTIME_TURN_TICK_INTERVAL",
        "1s",
        "turn scheduler period",
    ),
    (
        "BACKEND_RUNTIME_IMAGE_PULL_POLICY",
        "if_missing",
        "`if_missing`, `always`, `never`",
    ),
    (
        "BACKEND_RUNTIME_START_TIMEOUT",
        "60s",
        "time for a new engine to answer its health check",
    ),
    (
        "BACKEND_SHUTDOWN_TIMEOUT",
        "10s",
        "bound on draining requests and worker batches at shutdown",
    ),
    (
        "BACKEND_OTEL_TRACES_EXPORTER",
        "otlp",
        "`otlp`, `none`, `stdout`",
    ),
    (
        "BACKEND_OTEL_METRICS_EXPORTER",
        "otlp",
        "`otlp`, `none`, `stdout`, `prometheus`",
    ),
    (
        "BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR",
        "127.0.0.1:9464",
        "separate scrape listener (only with `prometheus`)",
    ),
    ("RUST_LOG", "info", "log filter"),
];

fn default_of(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, _)| *d)
        .unwrap_or_else(|| panic!("{name} is not in VARIABLES"))
}

#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub postgres: PostgresConfig,
    pub smtp: SmtpConfig,
    pub geoip: GeoipConfig,
    pub docker: DockerConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub notification: NotificationConfig,
    pub runtime: RuntimeConfig,
    pub otel: OtelConfig,
    pub shutdown_timeout: Duration,
    pub log_filter: String,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
    /// Every accepted push token: one, or two while the gateway's rotates.
    pub push_tokens: Vec<Secret>,
}

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub url: DatabaseUrl,
    pub max_connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTlsMode {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Secret,
    pub tls_mode: SmtpTlsMode,
    pub from: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct GeoipConfig {
    pub db_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub host: String,
    pub network: String,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub bootstrap_user: Option<String>,
    pub bootstrap_password: Secret,
    pub login_limit: RateLimit,
    /// Concurrent argon2 checks (already resolved: never 0).
    pub hash_concurrency: usize,
    pub session_ttl: Duration,
    /// `BACKEND_CONSOLE_INSECURE_COOKIE`: the console cookie without `Secure`.
    pub console_insecure_cookie: bool,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub session_ttl: Duration,
    pub code_ttl: Duration,
    pub email_code_limit: RateLimit,
    pub ip_code_limit: RateLimit,
    pub challenge_retention: Duration,
    pub session_retention: Duration,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub worker_interval: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub claim_lease: Duration,
    pub smtp_connections: usize,
}

#[derive(Debug, Clone)]
pub struct NotificationConfig {
    pub worker_interval: Duration,
    pub max_attempts: u32,
    pub admin_email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePullPolicy {
    IfMissing,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub reconcile_interval: Duration,
    pub turn_tick_interval: Duration,
    pub image_pull_policy: ImagePullPolicy,
    pub start_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    Otlp,
    None,
    Stdout,
    Prometheus,
}

#[derive(Debug, Clone)]
pub struct OtelConfig {
    pub traces_exporter: Exporter,
    pub metrics_exporter: Exporter,
    pub prometheus_listen: SocketAddr,
}

/// Shorthands that read a variable with its default from `VARIABLES`.
struct Reader<'a>(&'a Env);

impl Reader<'_> {
    fn duration(&self, name: &str) -> Result<Duration, ConfigError> {
        self.0.positive_duration_or(name, default_of(name))
    }
    fn rate(&self, name: &str) -> Result<RateLimit, ConfigError> {
        self.0.parse_or(name, default_of(name))
    }
    fn addr(&self, name: &str) -> Result<SocketAddr, ConfigError> {
        self.0.socket_addr_or(name, default_of(name))
    }
    fn string(&self, name: &str) -> String {
        self.0.string_or(name, default_of(name))
    }
    fn optional(&self, name: &str) -> Option<String> {
        self.0.get(name).map(str::to_owned)
    }
    fn choice(&self, name: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        self.0.choice_or(name, default_of(name), allowed)
    }
    /// A count of at least 1.
    fn count<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + From<u8>,
        T::Err: std::fmt::Display,
    {
        let v: T = self.0.parse_or(name, default_of(name))?;
        if v < T::from(1) {
            return Err(ConfigError::new(name, "must be at least 1"));
        }
        Ok(v)
    }
}

/// `BACKEND_PUSH_TOKEN`: one token, or two comma-separated so the gateway's
/// can be rotated without downtime (add the new one, roll the gateways, drop
/// the old one). Each is at least 16 characters; the error never shows them.
fn push_tokens(raw: &Secret) -> Result<Vec<Secret>, ConfigError> {
    let tokens: Vec<Secret> = raw
        .expose()
        .split(',')
        .map(|t| Secret::new(t.trim()))
        .collect();
    if tokens.len() > 2 {
        return Err(ConfigError::new(
            "BACKEND_PUSH_TOKEN",
            "at most two comma-separated tokens (the current one and the next)",
        ));
    }
    if tokens.iter().any(|t| t.expose().len() < 16) {
        return Err(ConfigError::new(
            "BACKEND_PUSH_TOKEN",
            "each token must be at least 16 characters",
        ));
    }
    Ok(tokens)
}

fn looks_like_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain))
        if !local.is_empty() && domain.contains('.') && !s.chars().any(char::is_whitespace))
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader(env);

        let postgres = {
            let dsn = env.required("BACKEND_POSTGRES_DSN")?;
            let timeout = r.duration("BACKEND_POSTGRES_STATEMENT_TIMEOUT")?;
            let url = DatabaseUrl::parse(&dsn, timeout)
                .map_err(|e| ConfigError::new("BACKEND_POSTGRES_DSN", e.to_string()))?;
            PostgresConfig {
                url,
                max_connections: r.count("BACKEND_POSTGRES_MAX_CONNECTIONS")?,
            }
        };

        let grpc = GrpcConfig {
            listen: r.addr("BACKEND_GRPC_LISTEN_ADDR")?,
            push_tokens: push_tokens(&env.required_secret("BACKEND_PUSH_TOKEN")?)?,
        };

        let smtp = SmtpConfig {
            host: env.required("BACKEND_SMTP_HOST")?,
            port: r.count("BACKEND_SMTP_PORT")?,
            username: r.optional("BACKEND_SMTP_USERNAME"),
            password: env.secret("BACKEND_SMTP_PASSWORD"),
            tls_mode: match r
                .choice("BACKEND_SMTP_TLS_MODE", &["starttls", "tls", "none"])?
                .as_str()
            {
                "starttls" => SmtpTlsMode::StartTls,
                "tls" => SmtpTlsMode::Tls,
                _ => SmtpTlsMode::None,
            },
            from: env.required("BACKEND_SMTP_FROM")?,
            timeout: r.duration("BACKEND_SMTP_TIMEOUT")?,
        };
        if !looks_like_email(&smtp.from) && !smtp.from.contains('<') {
            return Err(ConfigError::new(
                "BACKEND_SMTP_FROM",
                "must be an email address",
            ));
        }
        if smtp.username.is_some() && smtp.password.is_empty() {
            return Err(ConfigError::new(
                "BACKEND_SMTP_PASSWORD",
                "required when BACKEND_SMTP_USERNAME is set",
            ));
        }

        let admin = AdminConfig {
            bootstrap_user: r.optional("BACKEND_ADMIN_BOOTSTRAP_USER"),
            bootstrap_password: env.secret("BACKEND_ADMIN_BOOTSTRAP_PASSWORD"),
            login_limit: r.rate("BACKEND_ADMIN_LOGIN_LIMIT")?,
            hash_concurrency: match env.parse_or::<usize>(
                "BACKEND_ADMIN_HASH_CONCURRENCY",
                default_of("BACKEND_ADMIN_HASH_CONCURRENCY"),
            )? {
                0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                n => n,
            },
            session_ttl: r.duration("BACKEND_ADMIN_SESSION_TTL")?,
            console_insecure_cookie: r
                .choice("BACKEND_CONSOLE_INSECURE_COOKIE", &["true", "false"])?
                == "true",
        };
        if admin.bootstrap_user.is_some() && admin.bootstrap_password.expose().chars().count() < 12
        {
            return Err(ConfigError::new(
                "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
                "must be at least 12 characters when BACKEND_ADMIN_BOOTSTRAP_USER is set",
            ));
        }

        let mail = MailConfig {
            worker_interval: r.duration("BACKEND_MAIL_WORKER_INTERVAL")?,
            max_attempts: r.count("BACKEND_MAIL_MAX_ATTEMPTS")?,
            retry_base: r.duration("BACKEND_MAIL_RETRY_BASE")?,
            retry_max: r.duration("BACKEND_MAIL_RETRY_MAX")?,
            claim_lease: r.duration("BACKEND_MAIL_CLAIM_LEASE")?,
            smtp_connections: r.count("BACKEND_MAIL_SMTP_CONNECTIONS")?,
        };
        if mail.smtp_connections > galaxy_mail::MAX_SMTP_CONNECTIONS {
            return Err(ConfigError::new(
                "BACKEND_MAIL_SMTP_CONNECTIONS",
                format!("must be at most {}", galaxy_mail::MAX_SMTP_CONNECTIONS),
            ));
        }
        // A claimed row must stay leased while its try can still be running:
        // connect and each SMTP step are bounded by the timeout.
        if mail.claim_lease < smtp.timeout * 2 {
            return Err(ConfigError::new(
                "BACKEND_MAIL_CLAIM_LEASE",
                format!(
                    "must be at least twice BACKEND_SMTP_TIMEOUT ({}s)",
                    smtp.timeout.as_secs_f64()
                ),
            ));
        }
        if mail.retry_max < mail.retry_base {
            return Err(ConfigError::new(
                "BACKEND_MAIL_RETRY_MAX",
                "must not be shorter than BACKEND_MAIL_RETRY_BASE",
            ));
        }

        let notification = NotificationConfig {
            worker_interval: r.duration("BACKEND_NOTIFICATION_WORKER_INTERVAL")?,
            max_attempts: r.count("BACKEND_NOTIFICATION_MAX_ATTEMPTS")?,
            admin_email: r.optional("BACKEND_NOTIFICATION_ADMIN_EMAIL"),
        };
        if let Some(email) = &notification.admin_email
            && !looks_like_email(email)
        {
            return Err(ConfigError::new(
                "BACKEND_NOTIFICATION_ADMIN_EMAIL",
                "must be an email address",
            ));
        }

        let exporter = |name: &str, allowed: &[&str]| -> Result<Exporter, ConfigError> {
            Ok(match r.choice(name, allowed)?.as_str() {
                "otlp" => Exporter::Otlp,
                "stdout" => Exporter::Stdout,
                "prometheus" => Exporter::Prometheus,
                _ => Exporter::None,
            })
        };

        Ok(Self {
            http: HttpConfig {
                listen: r.addr("BACKEND_HTTP_LISTEN_ADDR")?,
            },
            grpc,
            postgres,
            smtp,
            geoip: GeoipConfig {
                db_path: env.required("BACKEND_GEOIP_DB_PATH")?.into(),
            },
            docker: DockerConfig {
                host: r.string("BACKEND_DOCKER_HOST"),
                network: r.string("BACKEND_DOCKER_NETWORK"),
            },
            admin,
            auth: AuthConfig {
                session_ttl: r.duration("BACKEND_AUTH_SESSION_TTL")?,
                code_ttl: r.duration("BACKEND_AUTH_CODE_TTL")?,
                email_code_limit: r.rate("BACKEND_AUTH_EMAIL_CODE_LIMIT")?,
                ip_code_limit: r.rate("BACKEND_AUTH_IP_CODE_LIMIT")?,
                challenge_retention: r.duration("BACKEND_AUTH_CHALLENGE_RETENTION")?,
                session_retention: r.duration("BACKEND_AUTH_SESSION_RETENTION")?,
            },
            mail,
            notification,
            runtime: RuntimeConfig {
                reconcile_interval: r.duration("BACKEND_RUNTIME_RECONCILE_INTERVAL")?,
                turn_tick_interval: r.duration("BACKEND_RUNTIME_TURN_TICK_INTERVAL")?,
                image_pull_policy: match r
                    .choice(
                        "BACKEND_RUNTIME_IMAGE_PULL_POLICY",
                        &["if_missing", "always", "never"],
                    )?
                    .as_str()
                {
                    "always" => ImagePullPolicy::Always,
                    "never" => ImagePullPolicy::Never,
                    _ => ImagePullPolicy::IfMissing,
                },
                start_timeout: r.duration("BACKEND_RUNTIME_START_TIMEOUT")?,
            },
            otel: OtelConfig {
                traces_exporter: exporter(
                    "BACKEND_OTEL_TRACES_EXPORTER",
                    &["otlp", "none", "stdout"],
                )?,
                metrics_exporter: exporter(
                    "BACKEND_OTEL_METRICS_EXPORTER",
                    &["otlp", "none", "stdout", "prometheus"],
                )?,
                prometheus_listen: r.addr("BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR")?,
            },
            shutdown_timeout: r.duration("BACKEND_SHUTDOWN_TIMEOUT")?,
            log_filter: r.string("RUST_LOG"),
        })
    }

    /// `BACKEND_*` variables that are set but unknown (likely typos).
    pub fn unknown_variables(env: &Env) -> Vec<String> {
        let known: Vec<&str> = VARIABLES.iter().map(|(n, _, _)| *n).collect();
        env.unknown_with_prefix("BACKEND_", &known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "BACKEND_POSTGRES_DSN",
                "postgres://u@localhost/galaxy?search_path=backend",
            ),
            ("BACKEND_PUSH_TOKEN", "0123456789abcdef0123"),
            ("BACKEND_SMTP_HOST", "localhost"),
            ("BACKEND_SMTP_FROM", "galaxy@example.com"),
            ("BACKEND_GEOIP_DB_PATH", "/tmp/x.mmdb"),
        ]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut vars = minimal();
        vars.extend_from_slice(extra);
        Config::from_env(&Env::from_pairs(vars))
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = with(&[]).unwrap();
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.grpc.listen.to_string(), "0.0.0.0:9090");
        assert_eq!(c.postgres.max_connections, 16);
        assert_eq!(c.smtp.port, 587);
        assert_eq!(c.smtp.tls_mode, SmtpTlsMode::StartTls);
        assert_eq!(c.smtp.timeout, Duration::from_secs(30));
        assert!(c.admin.hash_concurrency >= 1);
        assert_eq!(c.auth.session_ttl, Duration::from_secs(720 * 3600));
        assert_eq!(c.auth.email_code_limit.count, 5);
        assert_eq!(c.mail.worker_interval, Duration::from_secs(2));
        assert_eq!(c.mail.max_attempts, 8);
        assert_eq!(c.mail.retry_max, Duration::from_secs(1800));
        assert_eq!(c.notification.admin_email, None);
        assert_eq!(c.runtime.image_pull_policy, ImagePullPolicy::IfMissing);
        assert_eq!(c.otel.metrics_exporter, Exporter::Otlp);
        assert_eq!(c.docker.network, "galaxy-engines");
        assert_eq!(c.log_filter, "info");
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("BACKEND_MAIL_WORKER_INTERVAL", "abc"),
            ("BACKEND_MAIL_WORKER_INTERVAL", "0s"),
            ("BACKEND_HTTP_LISTEN_ADDR", "nowhere"),
            ("BACKEND_POSTGRES_MAX_CONNECTIONS", "0"),
            ("BACKEND_SMTP_PORT", "70000"),
            ("BACKEND_SMTP_TLS_MODE", "ssl"),
            ("BACKEND_AUTH_EMAIL_CODE_LIMIT", "5"),
            ("BACKEND_RUNTIME_IMAGE_PULL_POLICY", "sometimes"),
            ("BACKEND_OTEL_TRACES_EXPORTER", "prometheus"),
            ("BACKEND_NOTIFICATION_ADMIN_EMAIL", "not-an-email"),
            ("BACKEND_PUSH_TOKEN", "short"),
            ("BACKEND_PUSH_TOKEN", "0123456789abcdef0123,short"),
            ("BACKEND_PUSH_TOKEN", "0123456789abcdef0123,"),
            (
                "BACKEND_PUSH_TOKEN",
                "0123456789abcdef0,0123456789abcdef1,0123456789abcdef2",
            ),
            ("BACKEND_POSTGRES_DSN", "mysql://x/y"),
            ("BACKEND_MAIL_RETRY_MAX", "1s"),
        ];
        for (name, value) in cases {
            let err = with(&[(name, value)]).unwrap_err();
            assert_eq!(&err.variable, name, "{name}={value} gave {err}");
        }
    }

    #[test]
    fn two_push_tokens_while_rotating() {
        let c = with(&[(
            "BACKEND_PUSH_TOKEN",
            "old-token-0123456789, new-token-0123456789",
        )])
        .unwrap();
        let tokens: Vec<&str> = c.grpc.push_tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["old-token-0123456789", "new-token-0123456789"]);
        let err = with(&[("BACKEND_PUSH_TOKEN", "0123456789abcdef0123,short")]).unwrap_err();
        assert!(!err.to_string().contains("0123456789abcdef0123"), "{err}");
    }

    #[test]
    fn smtp_timeout_is_a_setting_and_bounds_the_claim_lease() {
        // Default SMTP timeout 30s: a lease below 60s is refused.
        let err = with(&[("BACKEND_MAIL_CLAIM_LEASE", "50s")]).unwrap_err();
        assert_eq!(err.variable, "BACKEND_MAIL_CLAIM_LEASE", "{err}");
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
        assert_eq!(with(&[]).unwrap().mail.smtp_connections, 1);
        let c = with(&[("BACKEND_MAIL_SMTP_CONNECTIONS", "32")]).unwrap();
        assert_eq!(c.mail.smtp_connections, 32);
        for bad in ["0", "33", "-1", "four"] {
            let err = with(&[("BACKEND_MAIL_SMTP_CONNECTIONS", bad)]).unwrap_err();
            assert_eq!(
                err.variable, "BACKEND_MAIL_SMTP_CONNECTIONS",
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn missing_required_variables_are_named() {
        for (name, _) in minimal() {
            let vars: Vec<_> = minimal().into_iter().filter(|(n, _)| *n != name).collect();
            let err = Config::from_env(&Env::from_pairs(vars)).unwrap_err();
            assert_eq!(err.variable, name);
            assert_eq!(err.problem, "required but not set");
        }
    }

    #[test]
    fn unknown_backend_variables_are_reported() {
        let mut vars = minimal();
        vars.push(("BACKEND_MAIL_WORKER_INTERVALL", "2s"));
        vars.push(("PATH", "/bin"));
        assert_eq!(
            Config::unknown_variables(&Env::from_pairs(vars)),
            vec!["BACKEND_MAIL_WORKER_INTERVALL".to_owned()]
        );
    }

    #[test]
    fn readme_table_lists_exactly_the_variables() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md at the repository root");
        let in_readme: std::collections::BTreeSet<String> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|n| n.starts_with("BACKEND_") || *n == "RUST_LOG")
            .map(str::to_owned)
            .collect();
        let in_code: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|(n, _, _)| (*n).to_owned()).collect();
        assert_eq!(
            in_readme, in_code,
            "README configuration table is out of sync with VARIABLES"
        );
        for (name, default, _) in VARIABLES {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}`")))
                .unwrap();
            let shown = if default.is_empty() {
                "(empty)".to_owned()
            } else {
                format!("`{default}`")
            };
            let shown = if *default == "(required)" {
                "(required)".to_owned()
            } else {
                shown
            };
            assert!(
                row.contains(&shown),
                "README row for {name} does not show default {shown}"
            );
        }
    }
}
